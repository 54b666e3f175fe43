"""The GPU check (`scripts/gpu_check.py`) on a CPU: its dry run runs every stage at tiny sizes
and writes the files a GPU run writes, and its decisions follow the timings."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from minrnn.kernels.benchmarking import Record
from test_benchmark import cpu_env

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from gpucheck import report  # noqa: E402

FILES = {"gpu_check.json", "gpu_check.md", "gpu_check_log.md", "benchmark_gpu_check.json",
         "benchmark_gpu_check.md", "benchmark_gpu_check.png"}
HAS_DATA = (pathlib.Path(os.environ["MINRNN_DATA_DIR"]) / "tinyshakespeare" / "input.txt").exists()


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("gpu_check")
  proc = subprocess.run(
      [sys.executable, "scripts/gpu_check.py", "--dry-run", "--out", str(tmp / "out"),
       "--work-dir", str(tmp / "work")],
      cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return tmp / "out", json.loads((tmp / "out" / "gpu_check.json").read_text())


@pytest.mark.slow
def test_dry_run_writes_what_a_gpu_run_writes(dry_run):
  out, summary = dry_run
  assert {p.name for p in out.iterdir()} == FILES  # At most 8 files, one PNG.
  assert summary["dry_run"] is True
  markdown = (out / "gpu_check.md").read_text()
  assert markdown.startswith("# GPU check (dry run")
  for heading in ("## Decisions", "## Stages", "## Compiled kernel tests", "## Kernel timings",
                  "## Shakespeare", "## ListOps"):
    assert heading in markdown


@pytest.mark.slow
def test_dry_run_runs_every_stage(dry_run):
  _, summary = dry_run
  status = {stage["name"]: stage["status"] for stage in summary["stages"]}
  for stage in ("setup", "tests", "kernels"):
    assert status[stage] == "ok", summary["stages"]
  # On a CPU every compiled-kernel test skips; the stage still collects and counts them.
  assert set(summary["tests"]["counts"]) == {"skipped"}
  kernels = summary["kernels"]
  assert kernels["decisions"]["mosaic_beats_triton"]["verdict"] in ("yes", "no")
  assert {r["op"] for r in kernels["decisions"]["fused_beats_pallas"]["layers"]} == {
      "minGRU", "minLSTM"}
  runs = summary["shakespeare"]
  for model in ("mingru", "minlstm", "transformer"):
    if HAS_DATA:
      assert runs[model]["status"] == "ok" and runs[model]["best_step"] == 2, runs[model]
      assert 0 < runs[model]["best_loss"] < 10
    else:
      assert "tinyshakespeare/input.txt" in runs[model]["status"]
  assert "mamba" in runs  # Run, or skipped for lack of time: recorded either way.
  listops = summary["listops"]
  assert status["listops"] == "ok", listops
  assert listops["last_step"] == 2 and listops["eval_steps"] == [2] and listops["best_step"] == 2
  assert 0 <= listops["test_accuracy"] <= 1 and listops["steps_per_sec"] > 0


def _record(op, impl, dtype, time, ms, suite="scan"):
  return Record(suite, op, impl, "jax", "fwd+bwd", dtype, 64, time, 256, ms=ms).to_json()


def test_decisions_need_every_shape_and_a_win_at_each():
  shape = dict(batch=64, features=256, lengths=[512, 4096], dtypes=["float32", "bfloat16"])
  records = [_record("scan", impl, dtype, time, ms)
             for dtype in shape["dtypes"] for time in shape["lengths"]
             for impl, ms in (("pallas_triton", 1.0), ("pallas_mosaic", 0.8))]
  compare = lambda records: report.compare(records, "scan", "scan", "pallas_mosaic",
                                           "pallas_triton", **shape)
  assert compare(records)["verdict"] == "yes"
  assert compare(records[:-1])["verdict"] == "undecided"
  assert compare(records[:-1])["missing"] == ["bfloat16 T=4096"]
  records[1] = _record("scan", "pallas_mosaic", "float32", 512, 1.2)
  assert compare(records)["verdict"] == "no"
