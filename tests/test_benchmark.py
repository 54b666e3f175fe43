"""The benchmark runner (`scripts/benchmark.py`) on a CPU: a dry run (interpreted kernels, tiny
shapes, no peers, a few cases; no timing is asserted) writes its results in the recorded
format, and a cell registered by an imported module is benchmarked without editing the runner."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# A user's cell, registered on import: the runner only learns its name from the command line.
CELL_MODULE = '''
import jax
from minrnn.cells import LinearRecurrentCell
from minrnn.layers.registry import register_cell


class GatedDecay(LinearRecurrentCell):
  num_projections = 2

  def coefficients(self, x):
    k, b = self.projections(x)
    return jax.nn.sigmoid(k), b


register_cell("gated_decay", GatedDecay)
'''


def cpu_env(**extra):
  """The environment of a CPU subprocess sharing the suite's compilation cache."""
  return dict(os.environ, JAX_PLATFORMS="cpu",
              JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.2",
              JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", **extra)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("benchmark")
  (out / "user_cells.py").write_text(CELL_MODULE)
  pythonpath = os.pathsep.join(filter(None, [str(out), os.environ.get("PYTHONPATH")]))
  proc = subprocess.run(
      [sys.executable, "scripts/benchmark.py", "--dry-run", "--suites", "scan,layers",
       "--implementations", "associative,pallas_triton", "--layers", "mingru,gated_decay",
       "--layer-implementations", "associative", "--import", "user_cells", "--name", "dry",
       "--out-dir", str(out)],
      cwd=REPO, env=cpu_env(PYTHONPATH=pythonpath), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return out, json.loads((out / "benchmark_dry.json").read_text())


def test_results_keep_the_recorded_format(dry_run):
  out, results = dry_run
  recorded = json.loads((REPO / "experiments" / "results" / "benchmark.json").read_text())
  assert set(results["records"][0]) == set(recorded["records"][0])
  assert {"device", "versions", "bandwidth_tbs", "args"} <= set(results["meta"])
  scan = {r["impl"]: r for r in results["records"] if r["op"] == "scan"}
  assert set(scan) == {"associative", "pallas_triton"}
  for record in scan.values():
    assert record["status"] == "ok" and record["ms"] > 0 and record["floor_ms"] > 0
    assert (record["batch"], record["time"], record["features"]) == (2, 16, 128)
    assert (record["mode"], record["dtype"]) == ("fwd+bwd", "float32")
  markdown = (out / "benchmark_dry.md").read_text()
  assert markdown.startswith("# Benchmark results\n")
  assert "## scan, fwd+bwd, float32, B=2 D=128 (scan)\n\n| implementation | T=16 |" in markdown
  assert "\n| pallas_triton | " in markdown
  assert (out / "benchmark_dry.png").read_bytes()[:4] == b"\x89PNG"


def test_a_cell_registered_by_an_imported_module_is_benchmarked(dry_run):
  _, results = dry_run
  layers = {(r["op"], r["impl"]): r for r in results["records"] if r["suite"] == "layers"}
  assert set(layers) == {("minGRU", "associative"), ("gated_decay", "associative")}
  assert layers[("gated_decay", "associative")]["status"] == "ok"
  assert layers[("gated_decay", "associative")]["ms"] > 0
