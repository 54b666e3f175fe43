"""Reading a run never writes to it: sampling (best and latest checkpoints), the final test
pass's reading of `best/`, and inspecting a run from Python leave its directory byte-identical
(files and folders alike), also where a command fails because a checkpoint is missing; and they
work on a read-only copy (the final test pass says that it could not save its result).

A read-only copy is a directory the process cannot write: made so by its permissions, or, for
root (whom permissions do not stop), by a read-only bind mount in a mount namespace of the
command's own (`unshare`).
"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import pytest
from ml_collections import config_dict

from minrnn import sample as sample_lib
from minrnn import train as train_lib
from minrnn.training import final_test as final_test_lib
from minrnn.training import workdir as workdir_lib
from minrnn.training.metrics import read_metrics


def _tree(path: pathlib.Path) -> dict[str, str]:
  """Every file's digest and every folder, by relative path."""
  return {str(p.relative_to(path)): ("folder" if p.is_dir()
                                     else hashlib.sha256(p.read_bytes()).hexdigest())
          for p in sorted(path.rglob("*"))}


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory):
  """A finished tiny enwik8 run (best/ and checkpoints/, a final_test section), and the same
  run stopped before its first evaluation, without best/ (as after a damaged one was moved
  aside)."""
  root = tmp_path_factory.mktemp("runs")
  config = tiny_run("enwik8", num_steps=4)
  config.train.checkpoint_every = 2
  config.train.eval_every = 4
  train_lib.train(config, root / "finished")
  early = config.copy_and_resolve_references()
  early.train.stop_at_step = 2
  train_lib.train(early, root / "early")
  shutil.rmtree(root / "early" / workdir_lib.BEST_DIR, ignore_errors=True)
  return root / "finished", root / "early"


def _saved_config(workdir: pathlib.Path) -> config_dict.ConfigDict:
  return config_dict.ConfigDict(
      json.loads((workdir / workdir_lib.CONFIG_FILE).read_text()))


def _read_everything(workdir: pathlib.Path) -> None:
  """Every in-process way of reading a run; a missing checkpoint is a clear error."""
  read_metrics(workdir / "metrics.jsonl")
  sample_lib.load_config(workdir)
  sample_lib.load_vocab(workdir)
  for checkpoint in ("best", "latest"):
    try:
      sample_lib.sample(workdir, "ab", length=3, checkpoint=checkpoint)
    except FileNotFoundError as e:
      assert "No checkpoint" in str(e)


def test_reading_a_run_leaves_it_byte_identical(runs):
  for workdir in runs:
    before = _tree(workdir)
    _read_everything(workdir)
    assert _tree(workdir) == before, workdir.name


def test_a_final_test_pass_without_a_best_checkpoint_writes_nothing(runs, tmp_path):
  # With a best checkpoint it writes final_test.json alone: tests/test_final_test.py.
  early = shutil.copytree(runs[1], tmp_path / "early")
  before = _tree(early)
  with pytest.raises(FileNotFoundError, match="No best checkpoint"):
    final_test_lib.final_test(_saved_config(early), early)
  assert _tree(early) == before


def _read_only(path: pathlib.Path, command: list[str]) -> list[str]:
  """`command`, run where `path` cannot be written."""
  if os.geteuid() != 0:
    return command
  if shutil.which("unshare") is None:
    pytest.skip("root ignores permissions and unshare(1) is missing: no read-only directory")
  script = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && '
            'touch "$0/.probe" 2>/dev/null && exit 99; shift; exec "$@"')
  probe = subprocess.run(["unshare", "-m", "sh", "-c", script, str(path), "x", "true"],
                         capture_output=True, text=True)
  if probe.returncode != 0:
    pytest.skip(f"root ignores permissions and no read-only mount is allowed here "
                f"({probe.stderr.strip()[:80] or probe.returncode})")
  return ["unshare", "-m", "sh", "-c", script, str(path), "x", *command]


def _chmod_tree(path: pathlib.Path, folders: int, files: int) -> None:
  for p in [path, *path.rglob("*")]:
    p.chmod(folders if p.is_dir() else files)


def test_read_only_commands_work_on_a_read_only_copy(runs, tmp_path):
  finished = shutil.copytree(runs[0], tmp_path / "finished")
  final_test = ("import json, sys; from ml_collections import config_dict; "
                "from minrnn.training import final_test as t; "
                "r = t.final_test(config_dict.ConfigDict(json.load(open(sys.argv[1]))), "
                "sys.argv[2]); print(t.summary(r, sys.argv[2]))")
  sample = [sys.executable, "-m", "minrnn.sample", "--workdir", str(finished), "--prompt", "ab",
            "--length", "3"]
  commands = {
      "sample best": sample,
      "sample latest": [*sample, "--checkpoint", "latest"],
      "final test": [sys.executable, "-c", final_test,
                     str(finished / workdir_lib.CONFIG_FILE), str(finished)],
  }
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir)
  before = _tree(finished)
  _chmod_tree(finished, 0o555, 0o444)
  try:
    for name, command in commands.items():
      proc = subprocess.run(_read_only(finished, command), capture_output=True, text=True,
                            env=env, timeout=300)
      assert proc.returncode == 0, (name, proc.stderr[-2000:])
    assert commands and proc.stdout.startswith("Final test pass"), proc.stdout
    assert "could not be written" in proc.stderr, proc.stderr
  finally:
    _chmod_tree(finished, 0o755, 0o644)
  assert _tree(finished) == before
