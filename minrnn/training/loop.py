"""The one training loop, for every task; resumes automatically from its workdir.

    run = prepare(config, workdir)   # checks everything, writes nothing on failure
    result = run.train()             # or train(config, workdir), both at once

`prepare` resolves the whole run before it touches the workdir: the task and its data files,
the model (names, options, widths), one abstract training step (shapes, scan paths), the
checkpoint to resume from, and the config against the one the run was trained with
(`minrnn.training.workdir`). A mistake is an exception with nothing written; an existing
workdir stays byte-identical and a new one is not created.

The workdir receives `config.json`, `vocab.json` (text tasks), `metrics.jsonl` and
`tensorboard/` (flushed at every log), `checkpoints/` (the last few) and `best/` (lowest
evaluation loss), `final_eval.json` and `loss_curve.png`. Batches and dropout keys are pure
functions of `(seed, step)`, so a run that is stopped and resumed computes exactly the losses of
one that never stopped. `train.stop_at_step` stops early on purpose; SIGTERM and SIGINT stop
after the step in flight with a checkpoint (`minrnn.training.preemption`).

The task (`minrnn.tasks`) builds the model and scores it; the loop only calls its interface.
Tasks that carry state between batches (long-context language modelling) train by truncated
backpropagation through time: the model state after each segment starts the next one,
checkpointed with the parameters. The final evaluation also scores the task's other evaluation
splits under `splits`.

Every path runs over a device mesh (`config.mesh`, `minrnn.training.distributed`): the batch is
split over `data`, time over `sequence` when it is larger than 1 (the scans then run the
sequence-parallel path), and parameters follow `distributed.DEFAULT_RULES`; losses equal one
device's for the same global batch. Run one process per host (`jax.distributed`, from
`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`); every process saves the
checkpoints into the shared workdir, process 0 alone writes the other outputs.
"""

from __future__ import annotations

import json
import math
import pathlib
import platform
import shutil
import time
from typing import Any

import flax
import jax
from tqdm import tqdm

from minrnn.tasks import make_task
from minrnn.tasks.base import Task
from minrnn.training import distributed
from minrnn.training import workdir as workdir_lib
from minrnn.training.checkpointing import CheckpointError, Checkpoints
from minrnn.training.metrics import METRICS_FILE, MetricsWriter, read_metrics
from minrnn.training.plots import plot_run
from minrnn.training.preemption import Preempted, Preemption
from minrnn.training.steps import (
    TrainState,
    create_state,
    evaluate,
    initial_model_state,
    make_eval_step,
    make_train_step,
)
from minrnn.training.workdir import BEST_DIR, CHECKPOINT_DIR, FINAL_EVAL_FILE, Workdir


def environment() -> dict[str, str]:
  """Versions and device of this process, for results."""
  device = jax.devices()[0]
  return {"jax": jax.__version__, "flax": flax.__version__, "backend": jax.default_backend(),
          "device": getattr(device, "device_kind", str(device)),
          "python": platform.python_version()}


def make_mesh(config: Any) -> jax.sharding.Mesh:
  """The device mesh of `config.mesh` (default: all devices on `data`)."""
  return distributed.make_mesh(config.get("mesh") or distributed.MESH_DEFAULTS)


def prepare(config: Any, workdir: str | pathlib.Path, *,
            accept_config_changes: bool = False) -> "Run":
  """Everything a run needs, checked, with the workdir untouched (see the module docstring).

  Args:
    config: an `ml_collections.ConfigDict` laid out like the files in `configs/`.
    workdir: the run's directory; resumed from if it holds checkpoints.
    accept_config_changes: resume even if settings `workdir.is_safe_change` refuses changed
      (the change is recorded in `config_history.jsonl`).
  """
  task = make_task(config.data, config.seed)
  state = create_state(config, task, mesh=make_mesh(config))
  run = Run(config, Workdir(workdir), task, state)
  try:
    run.check_step()
    resuming = run.checkpoints.latest_step() is not None
    run.changes = run.workdir.check_config(config.to_dict(), resuming, accept_config_changes)
    run.restore()
  except BaseException:
    run.close()  # Open checkpoint managers would complain at exit.
    raise
  return run


def train(config: Any, workdir: str | pathlib.Path, *,
          accept_config_changes: bool = False) -> dict[str, Any]:
  """Trains (or resumes) the run described by `config` in `workdir`.

  Returns:
    The final evaluation: `{"step", "completed", "eval": {...}, "best_eval_loss", ...}`, also
    written to `workdir/final_eval.json`.
  """
  return prepare(config, workdir, accept_config_changes=accept_config_changes).train()


class Run:
  """One prepared run: its task, state, checkpoints and the state carried between segments."""

  def __init__(self, config: Any, workdir: Workdir, task: Task, state: TrainState):
    self.config, self.workdir, self.task, self.state = config, workdir, task, state
    self.checkpoints = Checkpoints(workdir / CHECKPOINT_DIR, keep=config.train.keep_checkpoints)
    self.best = Checkpoints(workdir / BEST_DIR, keep=1)
    self.model_state = (initial_model_state(state, task.batch_size) if task.carries_state
                        else None)
    self.train_step = make_train_step(state, task)
    self.eval_step = make_eval_step(state, task)
    self.start, self.best_loss, self.changes = 0, math.inf, {}
    # Every process trains and saves checkpoints; process 0 alone writes the other outputs.
    self.main_process = jax.process_index() == 0

  def check_step(self) -> None:
    """Traces one training step abstractly: shape and scan-path mistakes surface here."""
    self.train_step.shapes(self.state.params, self.state.opt_state, self.task.train_batch(0),
                           jax.random.key(0), self.model_state)

  def tree(self) -> dict[str, Any]:
    tree = self.state.checkpoint_tree()
    if self.task.carries_state:
      tree["model_state"] = jax.tree.leaves(self.model_state)
    return tree

  def restore(self) -> None:
    """Loads the latest checkpoint, if any, and checks the best one."""
    step = self.checkpoints.latest_step()
    if step is None:
      return
    try:
      tree, meta = self.checkpoints.restore(step, self.tree())
    except CheckpointError as e:
      changed = {k: v for k, v in self.changes.items() if not workdir_lib.is_safe_change(k)}
      if not changed:
        raise
      raise CheckpointError(f"{e}\nSettings changed since the checkpoint was written:\n"
                            f"{workdir_lib.describe_changes(changed)}") from None
    self.state.params, self.state.opt_state = tree["params"], tree["opt_state"]
    if self.task.carries_state:
      self.model_state = jax.tree.unflatten(jax.tree.structure(self.model_state),
                                            tree["model_state"])
    self.start, self.best_loss = meta["step"], meta["best_eval_loss"]

  def _check_best(self) -> None:
    """A damaged `best/` checkpoint is moved aside (and reported), so the next evaluation
    saves a new one instead of keeping it."""
    step = self.best.latest_step()
    if step is None:
      return
    try:
      self.best.restore(step, self.state.checkpoint_tree())
    except CheckpointError as e:
      self.best.close()
      aside = self.workdir / f"{BEST_DIR}.damaged.{int(time.time())}"
      shutil.move(str(self.best.directory), aside)
      self.best = Checkpoints(self.workdir / BEST_DIR, keep=1)
      self.best_loss = math.inf
      print(f"The best checkpoint could not be read; moved it to {aside}. The next evaluation "
            f"saves a new one. ({str(e).splitlines()[0]})")

  def save(self, step: int) -> None:
    self.checkpoints.save(step, self.tree(), {"step": step, "best_eval_loss": self.best_loss})

  def close(self) -> None:
    self.checkpoints.close()
    self.best.close()

  def train(self) -> dict[str, Any]:
    """Trains from the restored step to `train.stop_at_step` (or the end), then evaluates."""
    if self.main_process:
      self.workdir.record_config(self.config.to_dict(), self.changes, self.start)
      if self.task.vocab is not None:
        (self.workdir / workdir_lib.VOCAB_FILE).write_text(json.dumps(self.task.vocab.to_json()))
    if self.start:
      self._check_best()
      print(f"Resuming from step {self.start} ({self.checkpoints.directory}).")
    tc = self.config.train
    stop = tc.num_steps if tc.stop_at_step is None else min(tc.stop_at_step, tc.num_steps)
    writer = (MetricsWriter(self.workdir.path, tensorboard=tc.tensorboard,
                            resume_step=self.start) if self.main_process else None)
    try:
      with Preemption() as preemption:
        last_eval = self._loop(stop, writer, preemption)
    finally:
      if writer:
        writer.close()
      self.close()
    return self._finish(max(self.start, stop), last_eval)

  def _loop(self, stop: int, writer: MetricsWriter | None, preemption: Preemption):
    """The steps; returns `(step, metrics)` of the last evaluation (None if none ran)."""
    tc, state, task = self.config.train, self.state, self.task
    dropout_root = jax.random.key(self.config.seed)
    progress = tqdm(total=tc.num_steps, initial=self.start,
                    disable=not (tc.progress_bar and self.main_process), unit="step",
                    dynamic_ncols=True)
    tokens_since, time_since, last_eval = 0, time.perf_counter(), None
    try:
      for step in range(self.start, stop):
        batch = task.train_batch(step)
        if task.carries_state and task.starts_stream(step):
          self.model_state = initial_model_state(state, task.batch_size)
        state.params, state.opt_state, metrics, self.model_state = self.train_step(
            state.params, state.opt_state, batch, jax.random.fold_in(dropout_root, step),
            self.model_state)
        done = step + 1
        tokens_since += batch["weights"].size
        progress.update(1)
        if done % tc.log_every == 0 or done == stop or preemption.requested:
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
          last_eval = (done, self._evaluate(done, writer))
          time_since = time.perf_counter()  # Time spent evaluating is not throughput.
        if done % tc.checkpoint_every == 0 or done == stop or preemption.requested:
          self.save(done)
        if preemption.requested:
          raise Preempted(preemption.signum, done, str(self.checkpoints.directory))
    finally:
      progress.close()
    return last_eval

  def _evaluate(self, done: int, writer: MetricsWriter | None) -> dict[str, float]:
    metrics = evaluate(self.eval_step, self.state, self.task)
    if writer:
      writer.write(done, "eval", metrics)
    if metrics["loss"] < self.best_loss:
      self.best_loss = metrics["loss"]
      self.best.save(done, self.state.checkpoint_tree(),
                     {"step": done, "best_eval_loss": self.best_loss, "eval": metrics})
    return metrics

  def _finish(self, final_step: int, last_eval) -> dict[str, Any]:
    run_eval = lambda split=None: evaluate(self.eval_step, self.state, self.task, split)
    eval_metrics = last_eval[1] if last_eval and last_eval[0] == final_step else run_eval()
    result = {
        "step": final_step,
        "completed": final_step >= self.config.train.num_steps,
        "eval": eval_metrics,
        "best_eval_loss": self.best_loss if math.isfinite(self.best_loss) else None,
        "task": self.task.name,
        "cell": self.config.model.cell,
        "headline": self.task.headline,
        "environment": environment(),
    }
    if len(self.task.eval_splits) > 1:
      result["splits"] = {split: run_eval(split) for split in self.task.eval_splits[1:]}
    if self.task.describe():
      result["data"] = self.task.describe()  # Which source and split the numbers are of.
    final = self.task.final_evaluation(self.state.model())
    if final is not None:
      result["final_evaluation"] = final
    if self.main_process:
      (self.workdir / FINAL_EVAL_FILE).write_text(json.dumps(result, indent=2))
      plot_run(read_metrics(self.workdir / METRICS_FILE), self.task.headline,
               self.workdir / workdir_lib.LOSS_CURVE_FILE,
               title=f"{self.task.name} / {self.config.model.cell}")
    return result


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
          f"Outputs in {workdir.resolve()}: config.json, {METRICS_FILE}, tensorboard/, "
          f"{CHECKPOINT_DIR}/, {BEST_DIR}/, {FINAL_EVAL_FILE}, {workdir_lib.LOSS_CURVE_FILE}.")
