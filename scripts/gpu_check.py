"""One command that checks minrnn's GPU work on one H100 or H200, writing what it measures under
an output folder, in order of importance so that a run cut off still returns the first parts.

    python scripts/gpu_check.py --prepare                # here: wheels into .whl/, the data file
    python3 scripts/gpu_check.py --out "$OUT"             # on the GPU machine: about 9 minutes
    python scripts/gpu_check.py --dry-run                # any machine: every stage, tiny, ~3 min

On the GPU machine: the checkout, with the git-ignored folders `.whl/` (wheels the GPU image
lacks: ml_collections, accelerated-scan, and setuptools for installing minrnn) and `runs/data/`
(Tiny Shakespeare) copied along, and a 10-minute limit for the command. The check budgets
`--budget` seconds (default 550) and each stage has its own limit within it:

  0. setup (60 s): installs the wheels into `runs/gpu_check/site` and minrnn itself (editable),
     then says what JAX sees;
  1. tests (110 s): `pytest -m gpu` on the kernel test files (the compiled kernels; never the
     multi-device CPU tests, which crash XLA's compiler under jaxlib 0.11.2);
  2. kernels (170 s): `scripts/benchmark.py` in one run, the copy bandwidth measured first:
     forward+backward, B=64 D=256, float32 and bfloat16, T=512 and 4096; the linear scan
     through both Pallas kernels (Triton, Mosaic GPU) beside `associative_scan` and
     accelerated-scan (Triton); the minGRU and minLSTM layers through `pallas`, `pallas_fused`
     and `associative`; the SRU layer (its default path: the Pallas kernel);
  3. Shakespeare: minGRU (70 s), minLSTM (70 s) and the Transformer (100 s) with the paper's
     configs (`configs/shakespeare.py:<model>`) stopped at step 2,000, best test loss and its
     step from each run's metrics; Mamba too if 45 s are left;
  4. ListOps, if 90 s are left (120 s): minGRU with the paper's config
     (`configs/listops.py:mingru`, 8 blocks at width 128, rows of up to 2,000 tokens) on
     training and test sets cut to 32,000 and 2,000 expressions (generated there), stopped at
     step 1,000; the validation accuracy at steps 500 and 1,000, the test accuracy at the
     better one, and the steps per second.

Files under `--out` (default `$OUT`, else `runs/gpu_check/out`): `gpu_check.{json,md}` (the
summary and the issue's decisions: does Mosaic GPU beat Triton at every shape, does
`pallas_fused` beat `pallas` with XLA's gates), `gpu_check_log.md` (the end of each stage's
output) and `benchmark_gpu_check.{json,md,png}` (the runner's results). A failing stage is a
recorded result, never the end of the check; the command exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # minrnn's pure-Python parts before minrnn is installed.

from gpucheck import report, stages  # noqa: E402

KERNEL_TESTS = ("tests/test_linear_scan_kernel.py", "tests/test_linear_scan_mosaic.py",
                "tests/test_fused_gates_kernel.py", "tests/test_sru_kernel.py",
                "tests/test_sru.py")
WHEELS = ("ml-collections==1.1.0", "accelerated-scan==0.3.1", "setuptools==84.2.1")
# pip's download for the GPU machine's Python 3.12 on x86-64, run here.
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                 "manylinux2014_x86_64", "manylinux1_x86_64")
SHAKESPEARE_FILE = "tinyshakespeare/input.txt"
# Run after the paper's comparison if time is left.
OPTIONAL_MODEL = "mamba"
# Seconds at the end of the kernels stage in which the runner starts no case: its groups may
# finish their cases in flight for 60 s past its budget, then it writes its results.
RUNNER_RESERVE_S = 70
# Set on the re-executed check after setup: the setup stage's result and the check's start.
SETUP_ENV, START_ENV = "MINRNN_GPU_CHECK_SETUP", "MINRNN_GPU_CHECK_START"
_BENCHMARK_CASES = ("--suites", "scan,layers,peers",
                    "--implementations", "pallas_triton,pallas_mosaic,associative",
                    "--layer-implementations", "pallas,pallas_fused,associative",
                    "--peers", "accelerated-scan", "--modes", "fwd+bwd")


@dataclasses.dataclass(frozen=True)
class Settings:
  """A check's sizes and limits (seconds)."""

  budget_s: float
  caps: dict[str, float]
  benchmark: tuple[str, ...]
  variant: str  # The Shakespeare configs' size suffix.
  train_overrides: tuple[str, ...]
  stop_at_step: int
  models: dict[str, float]  # The paper's comparison, each with its limit.
  # OPTIONAL_MODEL's (limit, seconds that must be left to start it); None: never run.
  optional: tuple[float, float] | None
  # The ListOps stage's (limit, seconds that must be left to start it), step budget and
  # overrides of `configs/listops.py:mingru<variant>`.
  listops: tuple[float, float]
  listops_stop_at_step: int
  listops_overrides: tuple[str, ...]


GPU = Settings(
    budget_s=550, caps={"setup": 60, "tests": 110, "kernels": 170},
    benchmark=(*_BENCHMARK_CASES, "--layers", "mingru,minlstm,sru", "--T", "512,4096",
               "--wide-T=", "--dtypes", "float32,bfloat16", "--compile-threads", "12"),
    variant="", train_overrides=(), stop_at_step=2000,
    models={"mingru": 70, "minlstm": 70, "transformer": 100}, optional=(120, 45),
    listops=(120, 90), listops_stop_at_step=1000,
    listops_overrides=("data.train_size=32000", "data.test_size=2000", "train.eval_every=500"))
# Tiny and interpreted on a CPU. Of the layers only minGRU's is timed: minLSTM's and SRU's
# take the same code paths, and their interpreted kernels take seconds each to compile.
DRY_RUN = Settings(
    budget_s=300, caps={"setup": 30, "tests": 60, "kernels": 150},
    benchmark=(*_BENCHMARK_CASES, "--layers", "mingru", "--dry-run"),
    variant=",cpu", stop_at_step=2,
    train_overrides=("train.eval_every=2", "train.log_every=1", "data.eval_batches=1",
                     "data.batch_size=4", "data.seq_len=16", "model.features=16",
                     "model.num_layers=1"),
    models={"mingru": 45, "minlstm": 45, "transformer": 45}, optional=None,
    listops=(60, 0), listops_stop_at_step=2,
    listops_overrides=("data.train_size=8", "data.valid_size=4", "data.test_size=4",
                       "data.batch_size=4", "data.eval_batch_size=4", "data.max_depth=3",
                       "data.max_args=3", "data.min_length=4", "data.max_length=16",
                       "model.features=16", "model.num_layers=1", "train.eval_every=2",
                       "train.warmup_steps=1"))


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "runs" / "gpu_check"
                                                                    / "out"))
  parser.add_argument("--work-dir", default=str(REPO / "runs" / "gpu_check"),
                      help="training runs, installed wheels and full logs")
  parser.add_argument("--data-dir", help="holds tinyshakespeare/input.txt (default: "
                      "$MINRNN_DATA_DIR, else runs/data)")
  parser.add_argument("--budget", type=float, help="seconds for the whole check")
  parser.add_argument("--dry-run", action="store_true",
                      help="every stage at tiny sizes, interpreted kernels (any machine)")
  parser.add_argument("--prepare", action="store_true",
                      help="download the wheels into .whl/ and copy the data into runs/data/")
  return parser.parse_args(argv)


def prepare(args) -> None:
  """Here, before a GPU run: the wheels the GPU image lacks into `.whl/`, and Tiny Shakespeare
  into `runs/data/`, both git-ignored."""
  from minrnn.data.paths import data_dir

  command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.12", "--implementation", "cp",
             *[a for p in PIP_PLATFORMS for a in ("--platform", p)], "-d", str(REPO / ".whl"),
             *WHEELS]
  subprocess.run(command, check=True)
  source = data_dir(args.data_dir) / SHAKESPEARE_FILE
  target = REPO / "runs" / "data" / SHAKESPEARE_FILE
  target.parent.mkdir(parents=True, exist_ok=True)
  shutil.copyfile(source, target)
  print(f"wheels in {REPO / '.whl'}; data in {target}. On the GPU machine, with .whl/ and "
        "runs/data/ copied along and 10 minutes: python3 scripts/gpu_check.py --out \"$OUT\"")


def _importable(module: str, env: dict[str, str]) -> bool:
  probe = subprocess.run([sys.executable, "-c", f"import {module}"], env={**os.environ, **env},
                         capture_output=True, cwd=REPO)
  return probe.returncode == 0


def setup(args, settings: Settings, work: pathlib.Path, env: dict[str, str]
          ) -> tuple[stages.StageResult, bool]:
  """Installs what the GPU image lacks; returns the stage and whether anything was installed
  (then the check restarts, so that its own imports see it)."""
  start, parts, installed = time.monotonic(), [], False
  wheels = sorted(str(p) for p in (REPO / ".whl").glob("*.whl"))
  if wheels and not args.dry_run:
    site = work / "site"
    parts.append(stages.run("setup: wheels", [
        sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
        "--no-cache-dir", "--upgrade", "--target", str(site), *wheels],
        settings.caps["setup"], work / "setup_wheels.log"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    installed = True
  if not _importable("minrnn.kernels", env):
    parts.append(stages.run("setup: minrnn", [
        sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
        "--no-build-isolation", "-e", str(REPO)], settings.caps["setup"],
        work / "setup_minrnn.log", env=env))
    installed = True
  probe = "import json; from minrnn.kernels import benchmarking as b; " \
          "print(json.dumps(b.environment(('ml-collections', 'accelerated-scan'))))"
  parts.append(stages.run("setup: environment", [sys.executable, "-c", probe],
                          settings.caps["setup"], work / "setup_environment.log", env=env))
  result = stages.StageResult("setup", status=next(
      (p.status for p in parts if not p.ok), "ok"), wall_s=round(time.monotonic() - start, 1),
      limit_s=settings.caps["setup"], command=parts[-1].command,
      log="\n".join(f"{p.name}: {p.status}\n{p.log}" for p in parts))
  if parts[-1].ok:
    result.details["environment"] = json.loads(parts[-1].log.strip().splitlines()[-1])
    platform = result.details["environment"].get("platform")
    if platform != "gpu" and not args.dry_run and result.ok:
      result.status = f"failed: JAX's device is {platform!r}, not a GPU"
  return result, installed


def _restart(setup_result: stages.StageResult, work: pathlib.Path, env: dict[str, str],
             start: float) -> None:
  path = work / "setup.json"
  path.write_text(json.dumps({**setup_result.to_json(), "log": setup_result.log,
                             "details": setup_result.details}))
  os.execve(sys.executable, [sys.executable, *sys.argv],
            {**os.environ, **env, SETUP_ENV: str(path), START_ENV: str(start)})


def _resumed_setup() -> stages.StageResult | None:
  if not os.environ.get(SETUP_ENV):
    return None
  return stages.StageResult(**json.loads(pathlib.Path(os.environ[SETUP_ENV]).read_text()))


def tests(settings: Settings, budget: stages.Budget, work: pathlib.Path, env: dict[str, str]
          ) -> stages.StageResult:
  """The compiled kernels' tests; on a CPU they all skip (the dry run checks the plumbing)."""
  command = [sys.executable, "-m", "pytest", "-m", "gpu", "-v", "-rfE", "--tb=short",
             "-p", "no:cacheprovider", *KERNEL_TESTS]
  result = stages.run("tests", command, budget.limit(settings.caps["tests"]),
                      work / "tests.log", env=env, cwd=REPO)
  result.details = stages.pytest_outcomes(result.log)
  if result.exit_code == 1:
    result.status = "failed: some tests failed"
  return result


def kernels(settings: Settings, budget: stages.Budget, work: pathlib.Path, out: pathlib.Path,
            env: dict[str, str]) -> tuple[stages.StageResult, dict]:
  """One benchmark run; returns the stage and the summary's kernel section."""
  limit = budget.limit(settings.caps["kernels"])
  command = [sys.executable, str(REPO / "scripts" / "benchmark.py"), *settings.benchmark,
             "--name", "gpu_check", "--out-dir", str(out),
             "--time-budget", str(max(10, int(limit - RUNNER_RESERVE_S)))]
  result = stages.run("kernels", command, limit, work / "kernels.log", env=env, cwd=REPO)
  path = out / "benchmark_gpu_check.json"
  records, meta = report.load_records(path)
  if not records:
    return result, {}
  measured = sum(r["status"] == "ok" for r in records)
  if result.ok and measured < len(records):
    result.status = f"partial: {measured} of {len(records)} cases measured"
  decisions = report.decisions(records, meta)
  return result, {"file": path.name, "bandwidth_tbs": meta.get("bandwidth_tbs"),
                  "decisions": decisions, "table": report.kernel_table(records,
                                                                       decisions["shape"])}


def _paper(model: str) -> dict:
  """The paper's best test loss and its step for `model`, as the Shakespeare experiment quotes
  them."""
  try:
    from experiments.shakespeare.run import PAPER
  except ImportError:  # Its imports need minrnn installed: then the table leaves them out.
    return {}
  paper = PAPER.get(model, {})
  return {"paper_loss": paper.get("loss"), "paper_best_step": paper.get("best_step")}


def _train(settings, model: str, limit: float, work: pathlib.Path, data: pathlib.Path | None,
           env: dict[str, str]) -> tuple[stages.StageResult, dict]:
  """One Shakespeare run from scratch; returns the stage and what its metrics say."""
  workdir = work / "shakespeare" / model
  shutil.rmtree(workdir, ignore_errors=True)
  overrides = (f"train.stop_at_step={settings.stop_at_step}", "train.progress_bar=False",
               "train.tensorboard=False", "data.download=False", *settings.train_overrides)
  command = [sys.executable, "-m", "minrnn.train", "--config",
             f"configs/shakespeare.py:{model}{settings.variant}", "--workdir", str(workdir),
             *[f"--config.{o}" for o in overrides]]
  if data is None:
    result = stages.StageResult(f"shakespeare {model}", status=f"failed: no {SHAKESPEARE_FILE}"
                                " in --data-dir, $MINRNN_DATA_DIR or runs/data (run --prepare)")
    return result, {"status": result.status, "stop_at_step": settings.stop_at_step,
                    **_paper(model)}
  result = stages.run(f"shakespeare {model}", command, limit, work / f"train_{model}.log",
                      env={**env, "MINRNN_DATA_DIR": str(data)}, cwd=REPO)
  run = stages.training_outcome(workdir, settings.stop_at_step)
  if result.status.startswith("timed out"):
    result.status = f"stopped by its {limit:.0f} s limit at step {run['last_step']}"
  elif result.ok and run["last_step"] < settings.stop_at_step:
    result.status = f"failed: ended at step {run['last_step']}"
  elif result.status.startswith("failed"):
    result.status += ": " + stages.tail(result.log, 1)[:200]
  run.update(status=result.status, wall_s=result.wall_s, **_paper(model))
  return result, run


def _data_dir(args) -> pathlib.Path | None:
  candidates = [args.data_dir] if args.data_dir else [os.environ.get("MINRNN_DATA_DIR"),
                                                      REPO / "runs" / "data"]
  for candidate in filter(None, candidates):
    if (pathlib.Path(candidate) / SHAKESPEARE_FILE).exists():
      return pathlib.Path(candidate).resolve()
  return None


class Check:
  """The check's results so far, written out after each of them."""

  def __init__(self, out: pathlib.Path, budget: stages.Budget, summary: dict):
    self.out, self.budget, self.summary = out, budget, summary
    self.results: list[stages.StageResult] = []

  def record(self, result: stages.StageResult) -> None:
    self.results.append(result)
    self.write(result.name, result.status)

  def write(self, name: str, status: str) -> None:
    self.summary["elapsed_s"] = self.budget.elapsed()
    report.write(self.out, self.summary, self.results)
    print(f"[{self.budget.elapsed():5.0f} s] {name}: {status}", flush=True)


def shakespeare(args, settings: Settings, check: Check, work: pathlib.Path,
                env: dict[str, str]) -> None:
  """The paper's comparison, then the optional model if enough time is left."""
  data = _data_dir(args)
  runs = check.summary.setdefault("shakespeare", {})
  for name, limit in settings.models.items():
    result, runs[name] = _train(settings, name, check.budget.limit(limit), work, data, env)
    check.record(result)
  left = check.budget.left()
  if settings.optional is None:
    status = "skipped: a dry run leaves it out"
  elif left < settings.optional[1]:
    status = f"skipped: {left:.0f} s left, it needs {settings.optional[1]:.0f}"
  else:
    result, runs[OPTIONAL_MODEL] = _train(settings, OPTIONAL_MODEL,
                                          check.budget.limit(settings.optional[0]), work, data,
                                          env)
    check.record(result)
    return
  runs[OPTIONAL_MODEL] = {"status": status, "stop_at_step": settings.stop_at_step,
                         **_paper(OPTIONAL_MODEL)}
  check.write(f"shakespeare {OPTIONAL_MODEL}", status)


def listops(settings: Settings, check: Check, work: pathlib.Path, env: dict[str, str]) -> None:
  """minGRU on ListOps at the paper's size, if enough of the budget is left; its sets are
  generated into the work folder."""
  limit, needs = settings.listops
  left = check.budget.left()
  if left < needs:
    check.summary["listops"] = {"status": f"skipped: {left:.0f} s left, it needs {needs:.0f}"}
    check.write("listops", check.summary["listops"]["status"])
    return
  workdir = work / "listops" / "mingru"
  shutil.rmtree(workdir, ignore_errors=True)
  overrides = (f"train.stop_at_step={settings.listops_stop_at_step}", "train.progress_bar=False",
               "train.tensorboard=False", f"data.dir={work / 'listops_data'}",
               *settings.listops_overrides)
  command = [sys.executable, "-m", "minrnn.train", "--config",
             f"configs/listops.py:mingru{settings.variant}", "--workdir", str(workdir),
             *[f"--config.{o}" for o in overrides]]
  result = stages.run("listops", command, check.budget.limit(limit), work / "train_listops.log",
                      env=env, cwd=REPO)
  outcome = stages.classification_outcome(workdir, settings.listops_stop_at_step)
  if result.ok and outcome["last_step"] < settings.listops_stop_at_step:
    result.status = f"failed: ended at step {outcome['last_step']}"
  elif result.status.startswith("failed"):
    result.status += ": " + stages.tail(result.log, 1)[:200]
  check.summary["listops"] = {**outcome, "status": result.status, "wall_s": result.wall_s,
                              "overrides": list(settings.listops_overrides)}
  check.record(result)


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.prepare:
    prepare(args)
    return
  settings = DRY_RUN if args.dry_run else GPU
  budget = stages.Budget(args.budget or settings.budget_s,
                         float(os.environ.get(START_ENV) or time.time()))
  work, out = pathlib.Path(args.work_dir), pathlib.Path(args.out)
  work.mkdir(parents=True, exist_ok=True)
  out.mkdir(parents=True, exist_ok=True)
  # Children of a dry run stay on the CPU; on the GPU machine they find the GPU themselves.
  env = {"JAX_PLATFORMS": "cpu"} if args.dry_run else {}
  setup_result = _resumed_setup()
  if setup_result is None:
    setup_result, installed = setup(args, settings, work, env)
    if installed:
      _restart(setup_result, work, env, budget.start)
  check = Check(out, budget, {"check": "gpu_check", "dry_run": args.dry_run,
                              "budget_s": budget.total_s,
                              "environment": setup_result.details.get("environment", {})})
  check.record(setup_result)
  result = tests(settings, budget, work, env)
  check.summary["tests"] = result.details
  check.record(result)
  result, check.summary["kernels"] = kernels(settings, budget, work, out, env)
  check.record(result)
  shakespeare(args, settings, check, work, env)
  listops(settings, check, work, env)
  print(report.markdown(check.summary))


if __name__ == "__main__":
  main()
