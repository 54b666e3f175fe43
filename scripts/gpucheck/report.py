"""The GPU check's report: the decisions its issue asks for, read off the kernel timings, and the
summary files (`gpu_check.json`, `gpu_check.md`, `gpu_check_log.md`), rewritten after every
stage so that a run cut off keeps what it finished.

Records are the runner's results as JSON dicts (`minrnn.kernels.benchmarking.Record.to_json`):
the check reads them without importing minrnn, so that it still reports when installing minrnn
failed.
"""

from __future__ import annotations

import datetime
import json
import pathlib
from typing import Any

from gpucheck.stages import StageResult, tail

SUMMARY = "gpu_check"
LOG = "gpu_check_log.md"
LOG_LINES = 120


def load_records(path: pathlib.Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
  """The records and meta of a runner's results file ([] and {} if it is missing)."""
  if not path.exists():
    return [], {}
  data = json.loads(path.read_text())
  return data["records"], data["meta"]


def compare(records, suite: str, op: str, fast: str, slow: str, batch: int, features: int,
            lengths, dtypes) -> dict[str, Any]:
  """Whether `fast` beat `slow` (forward+backward) at every (dtype, T) of the main shape:
  "yes", "no" (some shape measured slower) or "undecided" (a shape not measured by both)."""
  key = (suite, op, "fwd+bwd", batch, features)
  times = {(r["impl"], r["dtype"], r["time"]): r["ms"] for r in records
           if tuple(r[k] for k in ("suite", "op", "mode", "batch", "features")) == key
           and r["ms"] is not None}
  rows, missing = [], []
  for dtype in dtypes:
    for time in lengths:
      slow_ms, fast_ms = times.get((slow, dtype, time)), times.get((fast, dtype, time))
      if slow_ms is None or fast_ms is None:
        missing.append(f"{dtype} T={time}")
        continue
      rows.append({"dtype": dtype, "T": time, slow: slow_ms, fast: fast_ms,
                   "speedup": slow_ms / fast_ms, "faster": fast_ms < slow_ms})
  lost = [row for row in rows if not row["faster"]]
  verdict = "no" if lost else ("undecided" if missing or not rows else "yes")
  return {"verdict": verdict, "op": op, "fast": fast, "slow": slow, "rows": rows,
          "missing": missing}


def decisions(records, meta) -> dict[str, Any]:
  """The issue's two questions at the run's main shape, every length and dtype."""
  args = meta.get("args", {})
  shape = dict(batch=args.get("batch"), features=args.get("features"),
               lengths=[int(t) for t in str(args.get("T", "")).split(",") if t],
               dtypes=[d for d in str(args.get("dtypes", "")).split(",") if d])
  mosaic = compare(records, "scan", "scan", "pallas_mosaic", "pallas_triton", **shape)
  fused = [compare(records, "layers", op, "pallas_fused", "pallas", **shape)
           for op in ("minGRU", "minLSTM")]
  verdicts = {f["verdict"] for f in fused}
  fused_verdict = "no" if "no" in verdicts else ("yes" if verdicts == {"yes"} else "undecided")
  return {"shape": shape, "mosaic_beats_triton": mosaic,
          "fused_beats_pallas": {"verdict": fused_verdict, "layers": fused}}


def _ms(record: dict[str, Any] | None) -> str:
  if record is None:
    return "–"
  if record["ms"] is None:
    return record["status"].split(":")[0]
  pct = record.get("pct_floor")
  return f"{record['ms']:.3f}" + (f" ({pct:.0f}%)" if pct is not None else "")


def kernel_table(records, shape) -> list[str]:
  """Forward+backward at the main shape: a row per (op, implementation), a column per
  (dtype, T)."""
  columns = [(d, t) for d in shape["dtypes"] for t in shape["lengths"]]
  chosen = {}
  for r in records:
    if (r["mode"], r["batch"], r["features"]) == ("fwd+bwd", shape["batch"],
                                                  shape["features"]) and r["suite"] != "tune":
      chosen[(r["op"], r["impl"], r["dtype"], r["time"])] = r
  rows = sorted({(op, impl) for op, impl, _, _ in chosen}, key=lambda k: (k[0] != "scan", k))
  lines = ["| op | implementation | " + " | ".join(f"{d} T={t}" for d, t in columns) + " |",
           "|---|---|" + "---|" * len(columns)]
  for op, impl in rows:
    cells = [_ms(chosen.get((op, impl, d, t))) for d, t in columns]
    lines.append(f"| {op} | {impl} | " + " | ".join(cells) + " |")
  return lines


def _comparison_table(comparison: dict[str, Any]) -> list[str]:
  fast, slow = comparison["fast"], comparison["slow"]
  lines = [f"| {comparison['op']} | {slow} ms | {fast} ms | {slow} / {fast} |",
           "|---|---|---|---|"]
  for row in comparison["rows"]:
    lines.append(f"| {row['dtype']} T={row['T']} | {row[slow]:.3f} | {row[fast]:.3f} | "
                 f"{row['speedup']:.2f}× |")
  if comparison["missing"]:
    lines.append(f"| not measured by both: {', '.join(comparison['missing'])} | | | |")
  return lines + [""]


MOSAIC_ADVICE = {
    "yes": "Per kernels/linear_scan/NOTES.md: make `\"pallas\"` the alias of `\"pallas_mosaic\"` "
           "and put it first in `DEFAULT_ORDER[\"gpu\"]`.",
    "no": "Keep Triton as the default Pallas kernel; if Mosaic lost at every shape, "
          "kernels/linear_scan/NOTES.md says to delete it.",
    "undecided": "Not every shape was measured by both kernels: no decision.",
}
FUSED_ADVICE = {
    "yes": "Per kernels/linear_scan/NOTES.md: make `\"pallas_fused\"` the cells' GPU default.",
    "no": "Keep the plain kernel with XLA's gates; kernels/linear_scan/NOTES.md says to delete "
          "the fused-gate kernels unless they win everywhere.",
    "undecided": "Not every shape was measured by both paths: no decision.",
}


def markdown(summary: dict[str, Any]) -> str:
  env = summary.get("environment", {})
  title = "# GPU check" + (" (dry run: tiny sizes on a CPU; the numbers mean nothing)"
                           if summary["dry_run"] else "")
  lines = [title, "", f"- device: {env.get('device', '?')}; "
           + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v),
           f"- written {summary['written']}; {summary['elapsed_s']:.0f} s of a "
           f"{summary['budget_s']:.0f} s budget", "", "## Decisions", ""]
  kernels = summary.get("kernels") or {}
  if "decisions" in kernels:
    shape = kernels["decisions"]["shape"]
    where = f"B={shape['batch']} D={shape['features']} shape (forward+backward)"
    mosaic = kernels["decisions"]["mosaic_beats_triton"]
    lines += [f"**1. Mosaic GPU beats Triton on every {where}?** {mosaic['verdict']}", "",
              *_comparison_table(mosaic), MOSAIC_ADVICE[mosaic["verdict"]], ""]
    fused = kernels["decisions"]["fused_beats_pallas"]
    lines += [f"**2. pallas_fused beats pallas + XLA gates for minGRU and minLSTM at every "
              f"{where}?** {fused['verdict']}", ""]
    for layer in fused["layers"]:
      lines += _comparison_table(layer)
    lines += [FUSED_ADVICE[fused["verdict"]], ""]
  else:
    lines += ["No kernel timings: see the kernels stage below.", ""]
  lines += ["## Stages", "", "| stage | status | wall s | limit s |", "|---|---|---|---|"]
  for stage in summary["stages"]:
    lines.append(f"| {stage['name']} | {stage['status']} | {stage['wall_s']} | "
                 f"{stage['limit_s']} |")
  lines += ["", *_tests_lines(summary.get("tests")), *_kernel_lines(kernels),
            *_shakespeare_lines(summary.get("shakespeare", {})),
            *_listops_lines(summary.get("listops"))]
  return "\n".join(lines) + "\n"


def _tests_lines(tests: dict[str, Any] | None) -> list[str]:
  if not tests:
    return []
  counts = ", ".join(f"{n} {k}" for k, n in sorted(tests["counts"].items())) or "none"
  lines = ["## Compiled kernel tests (`pytest -m gpu`)", "", f"Outcomes: {counts}.", ""]
  failed = [(t, o) for t, o in sorted(tests["outcomes"].items()) if o in ("failed", "error")]
  for test, outcome in failed:
    lines.append(f"- {outcome.upper()} `{test}`: {tests['messages'].get(test, '')}")
  return lines + [""] * bool(failed)


def _kernel_lines(kernels: dict[str, Any]) -> list[str]:
  if not kernels.get("table"):
    return []
  return ["## Kernel timings", "",
          f"Median ms, forward+backward; in brackets the memory floor's share at "
          f"{kernels.get('bandwidth_tbs', float('nan')):.2f} TB/s. All cases: "
          f"`{kernels['file']}`.", "", *kernels["table"], ""]


def _shakespeare_lines(runs: dict[str, Any]) -> list[str]:
  if not runs:
    return []
  lines = ["## Shakespeare (the paper's configs, stopped early)", "",
           "| model | best test loss | at step | paper loss | paper best step | steps run | "
           "eval every | tokens/s | wall s | status |", "|---|---|---|---|---|---|---|---|---|---|"]
  for model, run in runs.items():
    loss = "–" if run.get("best_loss") is None else f"{run['best_loss']:.4f}"
    rate = "–" if run.get("tokens_per_sec") is None else f"{run['tokens_per_sec']:.3g}"
    lines.append(
        f"| {model} | {loss} | {run.get('best_step') or '–'} | {run.get('paper_loss') or '–'} | "
        f"{run.get('paper_best_step') or '–'} | {run.get('last_step', 0)}/"
        f"{run.get('stop_at_step')} | {run.get('eval_every') or '–'} | {rate} | "
        f"{run.get('wall_s', 0)} | {run.get('status')} |")
  return lines + [""]


def _listops_lines(run: dict[str, Any] | None) -> list[str]:
  if not run:
    return []
  lines = ["## ListOps (minGRU, the paper's config, stopped early)", ""]
  if "last_step" not in run:
    return lines + [f"Status: {run['status']}.", ""]
  pct = lambda v: "–" if v is None else f"{100 * v:.1f}"
  curve = ", ".join(f"{pct(a)} at {s}" for s, a in zip(run["eval_steps"], run["eval_accuracies"]))
  rate = "–" if run["steps_per_sec"] is None else f"{run['steps_per_sec']:.1f}"
  return lines + [
      f"Overrides: {', '.join(run['overrides']) or 'none'}. Status: {run['status']}.", "",
      "| validation acc. (%) | best step | test acc. at best (%) | steps run | steps/s | "
      "wall s |", "|---|---|---|---|---|---|",
      f"| {curve or '–'} | {run['best_step'] or '–'} | {pct(run['test_accuracy'])} | "
      f"{run['last_step']}/{run['stop_at_step']} | {rate} | {run['wall_s']} |", ""]


def write(out_dir: pathlib.Path, summary: dict[str, Any], stages: list[StageResult]) -> None:
  """Writes the summary JSON and markdown and the stages' log."""
  summary["written"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  summary["stages"] = [stage.to_json() for stage in stages]
  (out_dir / f"{SUMMARY}.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
  (out_dir / f"{SUMMARY}.md").write_text(markdown(summary))
  log = ["# GPU check: the end of each stage's output", ""]
  for stage in stages:
    log += [f"## {stage.name}: {stage.status} ({stage.wall_s} s)", "",
            f"`{' '.join(stage.command)}`" if stage.command else "", "", "```",
            tail(stage.log, LOG_LINES).replace("```", "'''"), "```", ""]
  (out_dir / LOG).write_text("\n".join(log))
