"""Which settings a resumed run may change: every key of every config is either refused on
change or listed as safe with its reason (`workdir.SAFE_CHANGES`, `workdir.SAFE_SECTIONS`),
and a key added to the configs since a run was saved is no change only at the value that does
what the code did before (`workdir.ADDED_KEYS`).

The safe keys are written here a second time, on their own: a key that changes the maths (say
`train.grad_accum_steps`) added to the code's table without a matching line here fails, and so
does a new config key that nothing refuses.
"""

import json
import pathlib

import pytest

from config_variants import VARIANTS
from minrnn import train as train_lib
from minrnn.training import workdir as workdir_lib
from minrnn.training.config import load_config
from minrnn.training.workdir import ConfigChangedError, Workdir, flatten

# What this suite holds safe to change on resume (see the module docstring).
SAFE = {
    "train.num_steps", "train.stop_at_step", "train.early_stopping_patience",
    "train.log_every", "train.eval_every", "train.checkpoint_every", "train.keep_checkpoints",
    "train.progress_bar", "train.tensorboard",
    "data.dir", "data.cache_dir", "data.download", "data.tfds_dir",
    "mesh.data", "mesh.sequence", "mesh.model", "train.skip_nonfinite_steps",
}
SAFE_SECTIONS = {"final_test"}


def _other(value):
  """A value unlike `value`."""
  if isinstance(value, bool):
    return not value
  if isinstance(value, (int, float)):
    return value + 1 if abs(value) < 1e6 else value * 2
  if isinstance(value, str):
    return value + "_changed"
  if isinstance(value, list):
    return value + [1]
  return 1  # None


def _with(config: dict, key: str, value) -> dict:
  """A copy of the nested `config` with flattened `key` set to `value`."""
  config = json.loads(json.dumps(config))
  *sections, name = key.split(".")
  node = config
  for section in sections:
    node = node[section]
  node[name] = value
  return config


def _without(config: dict, key: str) -> dict:
  config = json.loads(json.dumps(config))
  section, name = key.split(".")
  del config[section][name]
  return config


def _saved(tmp_path: pathlib.Path, config: dict) -> Workdir:
  workdir = Workdir(tmp_path / "run")
  workdir.path.mkdir()
  (workdir / workdir_lib.CONFIG_FILE).write_text(json.dumps(config))
  return workdir


def _variant_config(family: str, variant: str) -> dict:
  return json.loads(json.dumps(load_config(f"configs/{family}.py:{variant}").to_dict()))


def test_the_safe_table_is_this_suites_and_gives_every_reason():
  assert set(workdir_lib.SAFE_CHANGES) == SAFE
  assert set(workdir_lib.SAFE_SECTIONS) == SAFE_SECTIONS
  for key, reason in {**workdir_lib.SAFE_CHANGES, **workdir_lib.SAFE_SECTIONS}.items():
    assert isinstance(reason, str) and len(reason.split()) >= 4, key


def test_every_safe_key_is_a_key_of_some_config():
  keys = set()
  for family, variant in VARIANTS:
    keys |= set(flatten(_variant_config(family, variant)))
  sections = {key.split(".", 1)[0] for key in keys}
  assert SAFE <= keys, SAFE - keys  # A misspelt entry would protect nothing.
  assert SAFE_SECTIONS <= sections


@pytest.mark.parametrize("family,variant", VARIANTS)
def test_every_key_is_refused_on_change_unless_safe(family, variant, tmp_path):
  config = _variant_config(family, variant)
  workdir = _saved(tmp_path, config)
  for key, value in flatten(config).items():
    changed = _with(config, key, _other(value))
    if workdir_lib.is_safe_change(key):
      assert workdir.check_config(changed, resuming=True), key
    else:
      with pytest.raises(ConfigChangedError, match=f"  {key}: "):
        workdir.check_config(changed, resuming=True)


def _config_with(key: str) -> dict:
  for family, variant in VARIANTS:
    config = _variant_config(family, variant)
    if key in flatten(config):
      return config
  raise AssertionError(f"No config has the added key {key}.")


@pytest.mark.parametrize("key", sorted(workdir_lib.ADDED_KEYS))
def test_an_added_key_is_no_change_only_at_its_old_behaviour(key, tmp_path):
  config = _config_with(key)
  old = workdir_lib.ADDED_KEYS[key]
  workdir = _saved(tmp_path, _without(config, key))
  assert workdir.check_config(_with(config, key, old), resuming=True)[key] == (None, old)
  with pytest.raises(ConfigChangedError, match=f"  {key}: None -> "):
    workdir.check_config(_with(config, key, _other(old)), resuming=True)


def test_a_run_saved_without_a_key_resumes_only_at_its_old_behaviour(tiny_run, tmp_path):
  """End to end, on a run saved as code without the key saves it: neither its config.json nor
  the config its checkpoints carry holds the key (no resume in between, which would write
  them)."""
  config = tiny_run("copy", num_steps=2)
  workdir = tmp_path / "run"
  train_lib.train(config, workdir)
  key = "train.grad_accum_steps"
  for path in [workdir / workdir_lib.CONFIG_FILE,
               *workdir.glob(f"{workdir_lib.CHECKPOINT_DIR}/*/meta/metadata")]:
    saved = json.loads(path.read_text())
    if "config" in saved:  # A checkpoint's metadata: the config it was trained with.
      saved["config"] = _without(saved["config"], key)
    else:
      saved = _without(saved, key)
    path.write_text(json.dumps(saved))
  before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
  config.train.num_steps = 3
  config.train.grad_accum_steps = 2
  with pytest.raises(ConfigChangedError, match=f"{key}: None -> 2"):
    train_lib.train(config, workdir)
  assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before
  config.train.grad_accum_steps = 1
  train_lib.train(config, workdir)
  assert json.loads((workdir / workdir_lib.CONFIG_FILE).read_text())["train"]["num_steps"] == 3
