"""Test setup: data directory, JAX's persistent compilation cache, and the `gpu` marker."""

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


def pytest_collection_modifyitems(config, items):
  skip = pytest.mark.skip(reason="needs a GPU (compiled Pallas kernels)")
  for item in items:
    if "gpu" in item.keywords and not ON_GPU:
      item.add_marker(skip)
