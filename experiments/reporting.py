"""What the experiment scripts share: run flags and their checks, training runs, result files.

A script's command line is a `cli.ArgumentParser` (a bad or non-finite number is one line, exit
status 2) and its mistakes found later (an unknown model, variant or setting) raise ValueError
before any run trains; `if __name__ == "__main__"` runs `main` inside `cli.user_errors`, which
tells them in one line with exit status 2.

Every experiment writes `experiments/results/<name>.json` (the numbers, the paper's numbers, the
device, versions, steps and wall time), `<name>.md` (a table with the paper's number beside
ours) and `<name>.png`.
"""

from __future__ import annotations

import datetime
import json
import math
import pathlib
import sys
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "experiments" / "results"
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

from minrnn import cli  # noqa: E402  (after making the repository importable)
from minrnn.kernels import benchmarking  # noqa: E402
from minrnn.training.metrics import read_metrics, series  # noqa: E402
from minrnn.training.workdir import config_changes  # noqa: E402


def names(text: str, known, flag: str) -> list[str]:
  """The comma-separated names of `flag` (e.g. `--models`), each one of `known`; else a
  ValueError naming the unknown ones, before anything runs."""
  chosen = [name.strip() for name in text.split(",") if name.strip()]
  unknown = [name for name in chosen if name not in known]
  if unknown or not chosen:
    raise ValueError(f"{flag} {text!r}: unknown {', '.join(map(repr, unknown)) or 'empty list'};"
                     f" choose from {', '.join(sorted(known))}.")
  return chosen


def numbers(text: str, flag: str) -> list[int]:
  """The comma-separated whole numbers of `flag` (e.g. `--seeds 0,1,2`); else a ValueError."""
  try:
    return [int(item) for item in text.split(",")]
  except ValueError:
    raise ValueError(f"{flag} {text!r} must be whole numbers separated by commas, "
                     "e.g. 0,1,2.") from None


def add_run_arguments(parser) -> None:
  """The flags every training experiment takes: chunking, overrides and where results go."""
  parser.add_argument("--stop_at_step", type=int, default=None,
                      help="stop every run at this step (resume by running again)")
  parser.add_argument("--override", action="append", default=[],
                      help="config override key.sub=value, for every run (repeatable)")
  parser.add_argument("--name", default=None, help="results file name (default from variant)")
  parser.add_argument("--out_dir", default=str(RESULTS_DIR))


def environment() -> dict[str, Any]:
  """Device, platform, Python and library versions, and the date."""
  return benchmarking.environment(("optax", "orbax-checkpoint"))


def best_eval(workdir: str | pathlib.Path, metric: str = "loss") -> dict[str, Any]:
  """The evaluation curve of a run and its best point (lowest loss / highest accuracy)."""
  records = read_metrics(pathlib.Path(workdir) / "metrics.jsonl")
  steps, values = series(records, "eval", metric)
  if not steps:
    return {"steps": [], "values": [], "best": None, "best_step": None}
  pick = min if metric == "loss" else max
  best = pick(values)
  return {"steps": steps, "values": values, "best": best,
          "best_step": steps[values.index(best)]}


WALL_TIME_FILE = "experiment_wall_s.json"


def train_run(config, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Trains (or resumes) one run; returns its final evaluation, steps and wall time.

  The wall time is summed over every command that worked on the run (kept in the run's
  `experiment_wall_s.json`), so a run split into chunks reports its whole cost.
  """
  from minrnn import train as train_lib

  workdir = pathlib.Path(workdir)
  wall_file = workdir / WALL_TIME_FILE
  before = json.loads(wall_file.read_text())["wall_s"] if wall_file.exists() else 0.0
  start = time.perf_counter()
  result = train_lib.train(config, workdir)
  wall_s = round(before + time.perf_counter() - start, 1)
  wall_file.write_text(json.dumps({"wall_s": wall_s}))
  return {
      "step": result["step"],
      "num_steps": config.train.num_steps,
      "completed": result["completed"],
      "stopped_early": result["stopped_early"],
      "eval": result["eval"],
      "best": result["best"],
      "wall_s": wall_s,
      "run": pathlib.Path(workdir).name,  # The run's folder inside --workdir.
  }


# Settings that do not change what a run computes: left out when a run is compared with the
# paper's protocol.
BOOKKEEPING = ("train.progress_bar", "train.tensorboard", "train.log_every",
               "train.checkpoint_every", "train.keep_checkpoints", "train.stop_at_step",
               "data.dir", "data.download", "data.cache_dir", "mesh.")


def protocol_differences(config, paper_config) -> list[str]:
  """`key: ours (paper: theirs)` for every setting of `config` that differs from
  `paper_config`, the config of the paper's protocol for the same model (bookkeeping left
  out); [] when the run follows the protocol."""
  changes = config_changes(paper_config.to_dict(), config.to_dict())
  return [f"{key} {new!r} (paper: {old!r})" for key, (old, new) in changes.items()
          if not key.startswith(BOOKKEEPING)]


def protocol_label(differences: list[str], run: dict[str, Any]) -> str:
  """"paper protocol", or "reduced" with what differs; "partial" when the run has not reached
  its last step (and did not stop early)."""
  label = "paper protocol" if not differences else "reduced"
  if not run["completed"]:
    label += f", partial ({run['step']:,} of {run['num_steps']:,} steps)"
  return label


def reductions_label(*, variant: str, overrides, seeds, paper_seeds, stop_at_step=None,
                     variant_note: str = "") -> str:
  """"paper protocol", or "reduced: ..." naming every way a multi-seed experiment's runs differ
  from it: another config variant (described by `variant_note`), overrides, a stop step, other
  seeds than the paper's."""
  reductions = []
  if variant != "paper":
    reductions.append(f"`{variant}` configs{variant_note}")
  if overrides:
    reductions.append("overrides " + ", ".join(f"`{o}`" for o in overrides))
  if stop_at_step is not None:
    reductions.append(f"stopped at step {stop_at_step}")
  if tuple(seeds) != tuple(paper_seeds):
    reductions.append(f"seeds {', '.join(map(str, seeds))} (paper: {len(paper_seeds)} seeds)")
  return "paper protocol" if not reductions else "reduced: " + "; ".join(reductions)


def protocol_title(runs) -> str:
  """A table's first-line label for `runs` (each with its `differences` and `completed`): "the
  paper's protocol", or "reduced from the paper's protocol: " with every difference of any run;
  and how many runs stopped before their last step."""
  runs = list(runs)
  reduced = sorted({d for run in runs for d in run["differences"]})
  title = ("the paper's protocol" if not reduced else
           "reduced from the paper's protocol: " + "; ".join(reduced))
  partial = sum(not run["completed"] for run in runs)
  if partial:
    title += f"; partial: {partial} of {len(runs)} runs stopped before their last step"
  return title


def fmt(value: float | None, digits: int = 3) -> str:
  """A number for a table; "–" when missing."""
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "–"
  return f"{value:.{digits}f}"


def write_results(name: str, payload: dict[str, Any], markdown: str, figure,
                  out_dir: str | pathlib.Path = RESULTS_DIR) -> list[pathlib.Path]:
  """Writes `<name>.json`, `<name>.md` and `<name>.png` (from the matplotlib `figure`)."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  payload = dict(payload, written=datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds"))
  paths = [out_dir / f"{name}.{ext}" for ext in ("json", "md", "png")]
  paths[0].write_text(json.dumps(payload, indent=2, default=str) + "\n")
  paths[1].write_text(markdown.rstrip() + "\n")
  figure.savefig(paths[2], dpi=120)
  import matplotlib.pyplot as plt
  plt.close(figure)
  return paths


def environment_line(env: dict[str, Any]) -> str:
  """One markdown line naming the device and versions."""
  versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
  return f"Device: {env['device']} ({env['platform']}); Python {env['python']}; {versions}."
