"""The final test pass: a finished run's best checkpoint scored once more under the protocol of
its config's `final_test` section, beside the training-time evaluation.

    python -m minrnn.train --config configs/enwik8.py:srupp --workdir runs/enwik8_srupp_base \
        --final_test

SRU++'s official scripts (asappresearch/sru `experiments/srupp_experiments/train_enwik8.py`,
`train_wt103.py`) evaluate during training with many rows at the training's segment length;
their published numbers come from a last pass over the best checkpoint with one row, a longer
evaluation unroll (3072 bytes on enwik8, 2560 words on WikiText-103) and an attention mask
under which every query sees the same number of keys, memory included. The `final_test`
section holds that protocol:

  - `splits`: the evaluation splits scored, e.g. `("valid", "test")`;
  - `batch_size`, `seq_len`: rows and segment length (the state carried between segments);
  - `max_batches`: segments per split (None: the whole split);
  - `cell_kwargs`: temporal-layer options that replace the model's for the pass (SRU++:
    `memory_length` = the segment length and `same_length`); they hold no parameters, so the
    checkpoint restores into the model they build.

The pass holds the workdir's lock (`minrnn.training.lock`), reads `best/` and writes
`final_test.json`; nothing else in the workdir changes. A read-only copy of a run is scored
without the lock, and the result is printed only. Its settings may differ from the ones the run was trained with (`workdir.SAFE_SECTIONS`); any other
difference is refused, as on resume.
"""

from __future__ import annotations

import copy
import json
import pathlib
import sys
import time
from typing import Any

import jax

from minrnn.tasks import make_task
from minrnn.training.checkpointing import Checkpoints
from minrnn.training.lock import WorkdirLock
from minrnn.training.loop import environment
from minrnn.training.steps import create_state, evaluate, make_eval_step
from minrnn.training.workdir import BEST_DIR, CONFIG_FILE, FINAL_TEST_FILE, Workdir


def protocol_config(config: Any) -> Any:
  """A copy of `config` set up for its final test pass: `data.eval_batch_size`,
  `data.eval_seq_len` and `data.eval_batches` from `final_test`, and `model.cell_kwargs`
  updated with `final_test.cell_kwargs`. `config` itself is not changed."""
  if "final_test" not in config:
    raise ValueError(
        "The config has no final_test section, so it defines no final test pass; "
        "configs/enwik8.py and configs/wikitext103.py have one (SRU++'s official protocol).")
  test = config.final_test
  out = copy.deepcopy(config)
  out.data.eval_batch_size = test.batch_size
  out.data.eval_seq_len = test.seq_len
  out.data.eval_batches = test.max_batches
  out.model.cell_kwargs.update(dict(test.cell_kwargs))
  return out


def _restore_best(workdir: Workdir, state) -> tuple[int, dict[str, Any]]:
  """Loads the best checkpoint's parameters into `state`; returns its step and metadata."""
  checkpoints = Checkpoints(workdir / BEST_DIR, keep=1)
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise FileNotFoundError(
          f"No best checkpoint in {workdir / BEST_DIR}: a run saves it at its first "
          "evaluation (train.eval_every); train at least that far.")
    tree, meta = checkpoints.restore(step, state.checkpoint_tree())
  finally:
    checkpoints.close()
  state.params = tree["params"]
  return step, meta


def final_test(config: Any, workdir: str | pathlib.Path, *,
               accept_config_changes: bool = False) -> dict[str, Any]:
  """Scores the best checkpoint of the run in `workdir` under `config.final_test`.

  Args:
    config: the run's config (the one it was trained with), with a `final_test` section.
    workdir: the trained run's directory.
    accept_config_changes: score although settings outside `final_test` changed.

  Returns:
    `{"step", "checkpoint", "splits": {split: metrics}, "protocol", "best_eval", ...}`, also
    written to `workdir/final_test.json`, and `"saved"`: that file's path, or None where the
    workdir cannot be written (a read-only copy of a run: a warning says so, and the result is
    only returned).
  """
  workdir = Workdir(workdir)
  if workdir.saved_config() is None:
    raise FileNotFoundError(
        f"{workdir / CONFIG_FILE} not found: {workdir.path} holds no training run. Train it "
        "first with the same --config; the final test pass scores its best checkpoint.")
  workdir.check_config(config.to_dict(), resuming=True, accept_changes=accept_config_changes)
  lock = WorkdirLock(workdir.path)  # Not while the run trains: best/ may be mid-save.
  try:
    lock.acquire()
  except PermissionError:  # A read-only copy of a run: scored all the same, nothing written.
    lock = None
  try:
    return _final_test(config, workdir)
  finally:
    if lock is not None:
      lock.release()


def _final_test(config: Any, workdir: Workdir) -> dict[str, Any]:
  test_config = protocol_config(config)
  task = make_task(test_config.data, test_config.seed)
  splits = tuple(config.final_test.splits)
  unknown = [split for split in splits if split not in task.eval_splits]
  if unknown or not splits:
    raise ValueError(f"final_test.splits={list(splits)} must name some of the {task.name} "
                     f"task's evaluation splits {list(task.eval_splits)}.")
  # One device: the official pass reads one row, which no data axis could split.
  state = create_state(test_config, task)
  step, meta = _restore_best(workdir, state)
  eval_step = make_eval_step(state, task)
  start = time.perf_counter()
  scores = {split: evaluate(eval_step, state, task, split) for split in splits}
  test = config.final_test
  result = {
      "step": step,
      "checkpoint": BEST_DIR,
      "splits": scores,
      "protocol": {"batch_size": test.batch_size, "seq_len": test.seq_len,
                   "max_batches": test.max_batches, "cell_kwargs": dict(test.cell_kwargs)},
      # The training-time evaluation of the same checkpoint, for comparison.
      "best_eval": meta.get("eval"),
      "task": task.name,
      "cell": config.model.cell,
      "headline": task.headline,
      "wall_s": round(time.perf_counter() - start, 1),
      "environment": environment(),
  }
  saved = None
  if jax.process_index() == 0:
    try:
      (workdir / FINAL_TEST_FILE).write_text(json.dumps(result, indent=2))
      saved = str((workdir / FINAL_TEST_FILE).resolve())
    except OSError as e:
      print(f"warning: {workdir / FINAL_TEST_FILE} could not be written ({e.strerror}); the "
            "result is printed only.", file=sys.stderr)
  return {**result, "saved": saved}


def summary(result: dict[str, Any], workdir: str | pathlib.Path) -> str:
  """The lines the command line prints after a final test pass."""
  protocol = result["protocol"]
  splits = "; ".join(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                     for name, metrics in result["splits"].items())
  saved = (f"Written to {result['saved']}." if result.get("saved")
           else f"Not saved: {pathlib.Path(workdir) / FINAL_TEST_FILE} could not be written.")
  return (f"Final test pass of the best checkpoint (step {result['step']}), "
          f"{protocol['batch_size']} row(s) of {protocol['seq_len']}-token segments: {splits}.\n"
          f"{saved}")
