"""The one training loop, for every task; resumes automatically from its workdir.

The workdir receives: `config.json` (the resolved config), `metrics.jsonl` and `tensorboard/`
(training and evaluation metrics), `checkpoints/` (the last few) and `best/` (lowest
evaluation loss), `final_eval.json` and `loss_curve.png`. Batches and dropout keys are pure
functions of `(seed, step)`, so a run that is stopped and resumed computes exactly the losses of
one that never stopped. `train.stop_at_step` stops early on purpose (to split a long run into
chunks that fit a time limit); the learning-rate schedule still follows `train.num_steps`.

The task (`minrnn.tasks`) builds the model and scores it; the loop only calls its interface
(`minrnn.tasks.base.Task`). Tasks that carry state between batches (long-context language
modelling) train by truncated backpropagation through time: the model state after each segment
starts the next one, with gradients stopped between segments; it is checkpointed with the
parameters, so resumed runs stay exact. The final evaluation also scores every other
evaluation split of the task (e.g. test) under `splits`.

Every path runs over a device mesh (`minrnn.training.distributed`): `config.mesh` names its
axes, e.g. `--config.mesh.data=4 --config.mesh.sequence=2` (default: every device on `data`).
The batch (and a carried state) is split over `data`, time over `sequence` when it is larger
than 1 (the linear scans then run the sequence-parallel path), and the parameters and optimizer
state follow `distributed.DEFAULT_RULES`. The losses are those of one device for the same global
batch, and checkpoints restore onto any device count. Run one process per host
(`jax.distributed`, set up from `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
`JAX_PROCESS_ID`); all of them save the checkpoints into the shared workdir, process 0 alone
writes the other outputs.
"""

from __future__ import annotations

import json
import math
import pathlib
import platform
import time
from typing import Any

import flax
import jax
from tqdm.auto import tqdm

from minrnn.tasks import make_task
from minrnn.training import distributed
from minrnn.training.checkpointing import Checkpoints
from minrnn.training.metrics import METRICS_FILE, MetricsWriter, read_metrics
from minrnn.training.plots import plot_loss_curve
from minrnn.training.steps import (
    create_state,
    evaluate,
    initial_model_state,
    make_eval_step,
    make_train_step,
)

CONFIG_FILE = "config.json"
FINAL_EVAL_FILE = "final_eval.json"
LOSS_CURVE_FILE = "loss_curve.png"
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"


def environment() -> dict[str, str]:
  """Versions and device of this process, for results."""
  device = jax.devices()[0]
  return {"jax": jax.__version__, "flax": flax.__version__, "backend": jax.default_backend(),
          "device": getattr(device, "device_kind", str(device)),
          "python": platform.python_version()}


def make_mesh(config: Any) -> jax.sharding.Mesh:
  """The device mesh of `config.mesh` (default: all devices on `data`)."""
  return distributed.make_mesh(config.get("mesh") or distributed.MESH_DEFAULTS)


def train(config: Any, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Trains (or resumes) the run described by `config` in `workdir`.

  Args:
    config: an `ml_collections.ConfigDict` laid out like the files in `configs/`.
    workdir: the run's directory; created if missing, resumed from if it holds checkpoints.

  Returns:
    The final evaluation: `{"step", "completed", "eval": {...}, "best_eval_loss", ...}`, also
    written to `workdir/final_eval.json`.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  # Every process of a multi-process run trains and saves checkpoints (Orbax coordinates
  # them); process 0 alone writes the config, metrics, progress bar, results and plot.
  main_process = jax.process_index() == 0
  if main_process:
    (workdir / CONFIG_FILE).write_text(config.to_json_best_effort(indent=2, sort_keys=True))
  tc = config.train
  stop = tc.num_steps if tc.stop_at_step is None else min(tc.stop_at_step, tc.num_steps)

  mesh = make_mesh(config)
  task = make_task(config.data, config.seed)
  state = create_state(config, task, mesh=mesh)
  checkpoints = Checkpoints(workdir / CHECKPOINT_DIR, keep=tc.keep_checkpoints)
  best = Checkpoints(workdir / BEST_DIR, keep=1)
  run = _Run(task, state, checkpoints)
  start, best_loss = run.restore()

  writer = (MetricsWriter(workdir, tensorboard=tc.tensorboard, resume_step=start)
            if main_process else None)
  train_step = make_train_step(state, task)
  eval_step = make_eval_step(state, task)
  run_eval = lambda split=None: evaluate(eval_step, state, task, split)
  dropout_root = jax.random.key(config.seed)

  progress = tqdm(total=tc.num_steps, initial=start,
                  disable=not (tc.progress_bar and main_process),
                  unit="step", dynamic_ncols=True)
  tokens_since, time_since = 0, time.perf_counter()
  eval_metrics, eval_step_done = None, None
  try:
    for step in range(start, stop):
      batch = task.train_batch(step)
      if task.carries_state and task.starts_stream(step):
        run.model_state = initial_model_state(state, task.batch_size)
      state.params, state.opt_state, metrics, run.model_state = train_step(
          state.params, state.opt_state, batch, jax.random.fold_in(dropout_root, step),
          run.model_state)
      done = step + 1
      tokens_since += batch["weights"].size
      progress.update(1)
      if done % tc.log_every == 0 or done == stop:
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        now = time.perf_counter()
        metrics["tokens_per_sec"] = tokens_since / (now - time_since)
        metrics["learning_rate"] = float(state.schedule(step))
        tokens_since, time_since = 0, now
        if writer:
          writer.write(done, "train", metrics)
        progress.set_postfix(loss=f"{metrics['loss']:.4f}",
                             tok_s=f"{metrics['tokens_per_sec']:.3g}")
      if done % tc.eval_every == 0 or done == tc.num_steps:
        eval_metrics, eval_step_done = run_eval(), done
        if writer:
          writer.write(done, "eval", eval_metrics)
        if eval_metrics["loss"] < best_loss:
          best_loss = eval_metrics["loss"]
          best.save(done, state.checkpoint_tree(),
                    {"step": done, "best_eval_loss": best_loss, "eval": eval_metrics})
        # Time spent evaluating is not training throughput.
        time_since = time.perf_counter()
      if done % tc.checkpoint_every == 0 or done == stop:
        run.save(done, best_loss)
  finally:
    progress.close()
    if writer:
      writer.close()
    checkpoints.close()
    best.close()

  final_step = max(start, stop)
  if eval_step_done != final_step:
    eval_metrics = run_eval()
  result = {
      "step": final_step,
      "completed": final_step >= tc.num_steps,
      "eval": eval_metrics,
      "best_eval_loss": best_loss if math.isfinite(best_loss) else None,
      "task": task.name,
      "cell": config.model.cell,
      "environment": environment(),
  }
  if len(task.eval_splits) > 1:
    result["splits"] = {split: run_eval(split) for split in task.eval_splits[1:]}
  final = task.final_evaluation(state.model())
  if final is not None:
    result["final_evaluation"] = final
  if main_process:
    (workdir / FINAL_EVAL_FILE).write_text(json.dumps(result, indent=2))
    plot_loss_curve(read_metrics(workdir / METRICS_FILE), workdir / LOSS_CURVE_FILE,
                    title=f"{task.name} / {config.model.cell}")
  return result


class _Run:
  """The checkpointed part of a run: parameters, optimizer state and, for tasks that carry
  it, the model state between segments."""

  def __init__(self, task, state, checkpoints: Checkpoints):
    self.task, self.state, self.checkpoints = task, state, checkpoints
    self.model_state = (initial_model_state(state, task.batch_size) if task.carries_state
                        else None)

  def tree(self) -> dict[str, Any]:
    tree = self.state.checkpoint_tree()
    if self.task.carries_state:
      tree["model_state"] = jax.tree.leaves(self.model_state)
    return tree

  def restore(self) -> tuple[int, float]:
    """`(step, best evaluation loss)` of the latest checkpoint, loaded into the state; (0, inf)
    for a new run."""
    step = self.checkpoints.latest_step()
    if step is None:
      return 0, math.inf
    tree, meta = self.checkpoints.restore(step, self.tree())
    self.state.params, self.state.opt_state = tree["params"], tree["opt_state"]
    if self.task.carries_state:
      self.model_state = jax.tree.unflatten(jax.tree.structure(self.model_state),
                                            tree["model_state"])
    print(f"Resuming from step {meta['step']} ({self.checkpoints.directory}).")
    return meta["step"], meta["best_eval_loss"]

  def save(self, step: int, best_loss: float) -> None:
    self.checkpoints.save(step, self.tree(), {"step": step, "best_eval_loss": best_loss})


def summary(result: dict[str, Any], workdir: pathlib.Path) -> str:
  """The lines the command line prints at the end of a run."""
  state = "finished" if result["completed"] else "stopped early (resume by running again)"
  metrics = ", ".join(f"{k} {v:.4g}" for k, v in result["eval"].items())
  final = result.get("final_evaluation") or {}
  score = (f" Normalised score {final['normalized_score']:.1f}."
           if "normalized_score" in final else "")
  splits = "".join(f"; {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items())
                   for name, m in result.get("splits", {}).items())
  return (f"Step {result['step']} ({state}): eval {metrics}{splits}.{score}\n"
          f"Outputs in {workdir.resolve()}: {CONFIG_FILE}, {METRICS_FILE}, tensorboard/, "
          f"{CHECKPOINT_DIR}/, {BEST_DIR}/, {FINAL_EVAL_FILE}, {LOSS_CURVE_FILE}.")
