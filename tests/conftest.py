"""Test setup: data directory, JAX's persistent compilation cache, the `gpu` marker, and the
shared tiny models and runs.

Fixtures:
  - `fixture_data_dir`: a data directory holding every dataset in its upstream format
    (`datasets.write_all`), made once per session;
  - `tiny_lm(cell="mingru", vocab_size=11, seed=0, **model)`: a small `LanguageModel`
    (`model` overrides the `model` section of `lm_defaults`);
  - `tiny_run(family, **data)`: a complete tiny config of the training loop for `family`
    ("copy", "shakespeare", "enwik8", "wikitext103" or "d4rl"; the fixture families read
    `fixture_data_dir`); tests change what they need.
"""

import os
import pathlib

import jax
import pytest

_REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("MINRNN_DATA_DIR", str(_REPO.parent / "shared" / "data"))

# Compiled programs are reused across test runs; the suite recompiles little on a warm cache.
jax.config.update(
    "jax_compilation_cache_dir",
    os.environ.get("MINRNN_JAX_CACHE", os.path.expanduser("~/.cache/minrnn/jax")),
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

ON_GPU = jax.default_backend() == "gpu"

import datasets  # noqa: E402  (after the data directory is set)
from minrnn.data import paths  # noqa: E402
from minrnn.models import build_language_model  # noqa: E402
from minrnn.training.config import load_config, lm_defaults  # noqa: E402


def pytest_collection_modifyitems(config, items):
  skip = pytest.mark.skip(reason="needs a GPU (compiled Pallas kernels)")
  for item in items:
    if "gpu" in item.keywords and not ON_GPU:
      item.add_marker(skip)


@pytest.fixture(scope="session")
def fixture_data_dir(tmp_path_factory) -> pathlib.Path:
  return datasets.write_all(tmp_path_factory.mktemp("data"), paths.data_dir())


def lm_section(cell: str = "mingru", **model):
  """`lm_defaults()` at a tiny size (width 16, 2 layers, conv 3, MLP 2x), with `model`."""
  section = lm_defaults()
  section.update(dict(cell=cell, features=16, num_layers=2, conv_kernel_size=3,
                      mlp_expansion=2))
  section.update(model)
  return section


@pytest.fixture(scope="session")
def tiny_lm():
  def make(cell: str = "mingru", vocab_size: int = 11, seed: int = 0, **model):
    return build_language_model(lm_section(cell, **model), vocab_size, seed)
  return make


def _quiet(config, num_steps: int):
  config.train.num_steps = num_steps
  config.train.warmup_steps = 1
  config.train.log_every = 1
  config.train.eval_every = num_steps
  config.train.checkpoint_every = num_steps
  config.train.progress_bar = False
  config.train.tensorboard = False
  return config


def _tiny_run(family: str, data_dir: pathlib.Path, num_steps: int = 4):
  if family == "copy":
    config = load_config("configs/selective_copy.py:mingru,cpu")
    config.data.update(batch_size=8, seq_len=12, num_tokens=2, eval_batches=1)
  elif family == "shakespeare":
    config = load_config("configs/shakespeare.py:mingru,cpu")
    config.data.update(batch_size=16, seq_len=32, eval_batches=2, download=False)
  elif family in ("enwik8", "wikitext103"):
    config = load_config(f"configs/{family}.py:mingru,cpu")
    config.data.dir = str(data_dir)
    config.data.update(batch_size=2, seq_len=16, eval_batch_size=2, eval_seq_len=16,
                       eval_batches=2)
    if family == "enwik8":
      config.data.verify_checksum = False
  elif family == "d4rl":
    config = load_config("configs/d4rl.py:hopper-medium,mingru,cpu")
    config.data.dir = str(data_dir)
    config.data.update(batch_size=4, context=4, eval_fraction=0.25, eval_batches=1)
    config.data.rollouts.update(num_episodes=0, max_steps=8, progress_bar=False)
  else:
    raise ValueError(f"No tiny run for {family!r}.")
  config.model.update(features=16, num_layers=1, mlp_expansion=2)
  return _quiet(config, num_steps)


@pytest.fixture(scope="session")
def tiny_run(fixture_data_dir):
  def make(family: str, num_steps: int = 4):
    return _tiny_run(family, fixture_data_dir, num_steps)
  return make


def _cli_env() -> dict[str, str]:
  """A `python -m minrnn...` child's environment: CPU, and the suite's compilation cache."""
  return dict(os.environ, JAX_PLATFORMS="cpu",
              JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.2",
              JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def _cli_command(module: str, args) -> list[str]:
  import sys
  return [sys.executable, "-m", f"minrnn.{module}", *map(str, args)]


@pytest.fixture(scope="session")
def run_cli():
  """Runs `python -m minrnn.<module> *args` to the end; returns the finished process (stdout
  and stderr as text)."""
  import subprocess

  def run(module: str, *args, cwd=_REPO, timeout: int = 300):
    return subprocess.run(_cli_command(module, args), cwd=cwd, env=_cli_env(),
                          capture_output=True, text=True, timeout=timeout)
  return run


@pytest.fixture(scope="session")
def start_cli():
  """Starts `python -m minrnn.<module> *args` in the background; returns the `Popen` (stdout
  and stderr piped, as text)."""
  import subprocess

  def start(module: str, *args, cwd=_REPO):
    return subprocess.Popen(_cli_command(module, args), cwd=cwd, env=_cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  return start
