"""Every config family and variant resolves, with the same keys as the defaults (so every
default lives in one place), a model the registry knows, and clear errors for bad variants."""

import pytest

from config_variants import VARIANTS
from minrnn.layers import registry
from minrnn.tasks import task_names
from minrnn.training.config import (
    base_config,
    block_defaults,
    classifier_defaults,
    lm_defaults,
    load_config,
)

# The model section each family starts from (the rest: a language model's).
MODEL_DEFAULTS = {"d4rl": block_defaults, "listops": classifier_defaults}


def _keys(section, prefix=""):
  keys = set()
  for name, value in section.items():
    keys.add(prefix + name)
    if hasattr(value, "items") and name != "cell_kwargs":
      keys |= _keys(value, prefix + name + ".")
  return keys


@pytest.mark.parametrize("family,variant", VARIANTS)
def test_every_variant_has_the_default_keys_and_a_known_model(family, variant):
  config = load_config(f"configs/{family}.py:{variant}")
  model = variant.split(",")[-2]
  assert config.model.cell == model.split(",")[-1] and config.model.cell in registry.names()
  assert config.data.name in task_names()
  assert set(config.train.keys()) >= set(base_config().train.keys())
  assert set(config.train.keys()) == set(load_config("configs/shakespeare.py").train.keys())
  defaults = MODEL_DEFAULTS.get(family, lm_defaults)()
  assert _keys(config.model) == _keys(defaults)
  assert set(config.mesh.keys()) == set(base_config().mesh.keys())
  assert 0 <= config.train.warmup_steps < config.train.num_steps


def test_variant_parts_come_in_any_order_and_default():
  a = load_config("configs/shakespeare.py:cpu,gru")
  b = load_config("configs/shakespeare.py", "gru,cpu")
  assert a.to_dict() == b.to_dict() and a.model.cell == "gru" and a.model.features == 64
  assert load_config("configs/shakespeare.py").model.cell == "mingru"


def test_bad_variants_and_overrides_are_explained():
  with pytest.raises(ValueError, match="Unknown variant part 'gpu'.*size: paper, cpu"):
    load_config("configs/shakespeare.py:gpu")
  with pytest.raises(ValueError, match="gives model twice"):
    load_config("configs/shakespeare.py:gru,lstm")
  with pytest.raises(ValueError, match="Unknown setting 'model.featurez'.*model.features"):
    load_config("configs/shakespeare.py:cpu", overrides=["model.featurez=3"])


def test_listops_variants_are_the_ablation_of_the_paper_config():
  paper = load_config("configs/listops.py:minlstm")
  assert (paper.model.conv_kernel_size, paper.model.mlp_expansion) == (4, 2)
  assert (paper.model.features, paper.model.num_layers, paper.data.batch_size) == (128, 8, 32)
  assert paper.train.warmup_steps == paper.train.num_steps // 10
  for blocks, conv, mlp in (("no_conv", 0, 2), ("no_mlp", 4, 0), ("no_conv_no_mlp", 0, 0)):
    ablated = load_config(f"configs/listops.py:minlstm,{blocks}")
    assert (ablated.model.conv_kernel_size, ablated.model.mlp_expansion) == (conv, mlp)
    ablated.model.update(conv_kernel_size=4, mlp_expansion=2)
    assert ablated.to_dict() == paper.to_dict()  # Nothing else differs.


def test_load_config_works_from_any_directory_and_names_a_missing_file(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = load_config("configs/shakespeare.py:mingru,cpu", overrides=["train.num_steps=7"])
  assert config.train.num_steps == 7 and config.model.cell == "mingru"
  with pytest.raises(FileNotFoundError, match="configs/shakespear.py"):
    load_config("configs/shakespear.py")
