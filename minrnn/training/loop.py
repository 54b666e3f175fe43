"""The one training loop, for every task; resumes automatically from its workdir.

    run = prepare(config, workdir)   # checks everything, writes nothing on failure
    result = run.train()             # or train(config, workdir), both at once

`prepare` takes the workdir's lock (`minrnn.training.lock`: one process per run; also the first
check that the workdir can be written), then resolves the whole run before it writes anything:
the task and its data files, the model (names, options, widths), one abstract training step
(shapes, scan paths), the checkpoint to resume from, and the config against the one the run was
trained with (`minrnn.training.workdir`). A mistake is an exception with nothing written: the
lock is released, an existing workdir stays byte-identical and a new one is removed again.

The workdir receives `config.json`, `vocab.json` (text tasks), `metrics.jsonl` and
`tensorboard/` (on disk at every log), `checkpoints/` (the last few, each with the config it was
trained with) and `best/` (the best evaluation by `train.best_metric`, default the loss;
`minrnn.training.best`), `final_eval.json` and `loss_curve.png`. A training step that is not
finite stops the run with `Diverged`, or is skipped (`minrnn.training.divergence`); nothing
non-finite is saved, and the files stay strict JSON (`minrnn.training.metrics.strict_json`).
Batches and dropout keys are pure functions of `(seed, step)`, so a run that is stopped and
resumed computes exactly the losses of one that never stopped. `train.stop_at_step` stops early
on purpose; `train.early_stopping_patience` ends the run after that many evaluations without a
better one (`minrnn.training.selection`); SIGTERM and SIGINT stop after the step in flight with
a checkpoint (`minrnn.training.preemption`). `train.grad_accum_steps` splits every batch into
micro-batches whose gradients make one update (`minrnn.training.steps.make_train_step`).

`final_eval.json` holds the last evaluation (`eval`, and `splits` for the task's other
evaluation splits, with the final parameters) and `best`: the best evaluation's metric, value,
step and metrics, and the other splits scored with the best checkpoint's parameters (a test
split evaluated at the checkpoint chosen on the validation split).

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
checkpoints into the shared workdir, process 0 alone takes the lock and writes the other
outputs.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import platform
import time
from typing import Any

import flax
import jax
from tqdm import tqdm

from minrnn.tasks import make_task
from minrnn.tasks.base import Task
from minrnn.training import distributed
from minrnn.training import workdir as workdir_lib
from minrnn.training.best import BestCheckpoint
from minrnn.training.checkpointing import CheckpointError, Checkpoints
from minrnn.training.config import check_values
from minrnn.training.divergence import StepGuard
from minrnn.training.lock import WorkdirLock
from minrnn.training.metrics import METRICS_FILE, MetricsWriter, read_metrics, strict_json
from minrnn.training.plots import plot_run
from minrnn.training.preemption import Preempted, Preemption
from minrnn.training.selection import Selection
from minrnn.training.steps import (
    FINITE,
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
  check_values(config)
  lock = WorkdirLock(workdir)
  if jax.process_index() == 0:  # One lock per run, however many processes train it.
    lock.acquire()
  run = None
  try:
    task = make_task(config.data, config.seed)
    state = create_state(config, task, mesh=make_mesh(config))
    run = Run(config, Workdir(workdir), task, state, lock)
    run.check_step()
    run.check_best_metric()
    read_metrics(run.workdir / METRICS_FILE)  # A damaged log is found before any write.
    run.check_config(accept_config_changes)
    run.restore()
  except BaseException:
    if run is not None:
      run.close(failed=True)  # Open checkpoint managers would complain at exit.
    else:
      lock.release(failed=True)
    raise
  return run


def train(config: Any, workdir: str | pathlib.Path, *,
          accept_config_changes: bool = False) -> dict[str, Any]:
  """Trains (or resumes) the run described by `config` in `workdir`.

  Returns:
    The final evaluation: `{"step", "completed", "stopped_early", "eval": {...}, "best": {...},
    ...}` (see the module docstring), also written to `workdir/final_eval.json`.
  """
  return prepare(config, workdir, accept_config_changes=accept_config_changes).train()


class Run:
  """One prepared run: its task, state, checkpoints and the state carried between segments."""

  def __init__(self, config: Any, workdir: Workdir, task: Task, state: TrainState,
               lock: WorkdirLock | None = None):
    self.config, self.workdir, self.task, self.state = config, workdir, task, state
    self.lock = lock
    tc = config.train
    self.train_step = make_train_step(state, task, tc.grad_accum_steps)
    self.eval_step = make_eval_step(state, task)
    self.selection = Selection(tc.best_metric, tc.best_metric in task.higher_is_better,
                               tc.early_stopping_patience)
    self.guard = StepGuard(tc.get("skip_nonfinite_steps", 0))
    self.checkpoints = Checkpoints(workdir / CHECKPOINT_DIR, keep=tc.keep_checkpoints)
    self.best = BestCheckpoint(workdir / BEST_DIR, self.selection)
    self.model_state = (initial_model_state(state, task.batch_size) if task.carries_state
                        else None)
    self.start, self.changes = 0, {}
    # The config as JSON holds it (config.json, and every checkpoint's metadata).
    self.config_json = json.loads(json.dumps(config.to_dict(), default=str))
    self.config_note = ""
    # Every process trains and saves checkpoints; process 0 alone writes the other outputs.
    self.main_process = jax.process_index() == 0

  def check_step(self) -> None:
    """Traces one training step abstractly: shape and scan-path mistakes surface here."""
    self.train_step.shapes(self.state.params, self.state.opt_state, self.task.train_batch(0),
                           jax.random.key(0), self.model_state)

  def check_best_metric(self) -> None:
    """`train.best_metric` must be one of the task's evaluation metrics (every task reports
    `loss`; the others are found from one evaluation batch, traced abstractly)."""
    metric = self.selection.metric
    if metric == "loss":
      return
    batch = next(iter(self.task.eval_batches()), None)
    if batch is None:
      raise ValueError(f"The {self.task.name} task has no evaluation batches to choose the best "
                       "checkpoint by; check data.eval_batches.")
    model_state = (initial_model_state(self.state, self.task.eval_batch_size)
                   if self.task.carries_state else None)
    sums, _ = self.eval_step.shapes(self.state.params, batch, model_state)
    names = self.task.eval_metrics({name: 1.0 for name in sums})
    if metric not in names:
      raise ValueError(f"train.best_metric={metric!r} is not an evaluation metric of the "
                       f"{self.task.name} task; choose one of {', '.join(sorted(names))}.")

  def tree(self) -> dict[str, Any]:
    tree = self.state.checkpoint_tree()
    if self.task.carries_state:
      tree["model_state"] = jax.tree.leaves(self.model_state)
    return tree

  def check_config(self, accept_changes: bool) -> None:
    """Compares the config with the one the run was trained with (`Workdir.check_resume`)."""
    step = self.checkpoints.latest_step()
    trained = None if step is None else (self.checkpoints.meta(step) or {}).get("config")
    self.changes, self.config_note = self.workdir.check_resume(
        self.config_json, step, trained, accept_changes)

  def restore(self) -> None:
    """Loads the latest checkpoint, if any; refuses a step budget below the steps done."""
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
    num_steps = self.config.train.num_steps
    if meta["step"] > num_steps:
      raise ValueError(
          f"train.num_steps={num_steps} is below the {meta['step']} steps this run has done "
          f"(checkpoint {self.checkpoints.directory / str(step)}); a run cannot be shortened. "
          f"Give --config.train.num_steps={meta['step']} or more, or use a new --workdir.")
    self.state.params, self.state.opt_state = tree["params"], tree["opt_state"]
    if self.task.carries_state:
      self.model_state = jax.tree.unflatten(jax.tree.structure(self.model_state),
                                            tree["model_state"])
    self.start = meta["step"]
    self.selection.restore(meta)

  def _score(self, tree: dict[str, Any]) -> dict[str, float]:
    """The evaluation of a checkpoint tree's parameters."""
    return evaluate(self.eval_step, dataclasses.replace(self.state, params=tree["params"]),
                    self.task)

  def save(self, step: int) -> None:
    self.checkpoints.save(step, self.tree(), {"step": step, **self.selection.meta(),
                                              "config": self.config_json})

  def close(self, failed: bool = False) -> None:
    """Closes the checkpoints and releases the lock (see `WorkdirLock.release`)."""
    self.checkpoints.close()
    self.best.close()
    if self.lock is not None:
      self.lock.release(failed=failed)

  def train(self) -> dict[str, Any]:
    """Trains from the restored step to `train.stop_at_step` (or the end, or until the
    patience runs out), then evaluates.

    Raises:
      Diverged: a training step was not finite (`minrnn.training.divergence`).
    """
    if self.main_process:
      if self.config_note:
        print(self.config_note)
      self.workdir.record_config(self.config_json, self.changes, self.start)
      if self.task.vocab is not None:
        (self.workdir / workdir_lib.VOCAB_FILE).write_text(json.dumps(self.task.vocab.to_json()))
    if self.start:
      self.best.check(self.state.checkpoint_tree(), self.checkpoints, self.tree(), self._score)
      print(f"Resuming from step {self.start} ({self.checkpoints.directory}).")
    tc = self.config.train
    stop = tc.num_steps if tc.stop_at_step is None else min(tc.stop_at_step, tc.num_steps)
    if self.selection.stopped:
      print(f"The run stopped early at step {self.start}: {self.selection.evals_since_best} "
            f"evaluations without a better {self.selection.metric}.")
      stop = self.start
    writer = (MetricsWriter(self.workdir.path, tensorboard=tc.tensorboard,
                            resume_step=self.start) if self.main_process else None)
    try:
      with Preemption() as preemption:
        final_step, last_eval = self._loop(stop, writer, preemption)
      return self._finish(final_step, last_eval)
    finally:
      if writer:
        writer.close()
      self.close()

  def _check_step(self, done: int, metrics: dict[str, Any], writer: MetricsWriter | None
                  ) -> None:
    """Reads whether step `done` was finite; logs it and stops or skips if not."""
    values = self.guard.check(done, metrics)
    if values is None:
      return
    if writer:
      writer.write(done, "train", {**values, "skipped": 1.0})
    self.guard.stop_or_skip(done, values, self.checkpoints.latest_step())

  def _loop(self, stop: int, writer: MetricsWriter | None, preemption: Preemption):
    """The steps; returns the step reached and `(step, metrics)` of the last evaluation (None
    if none ran).

    Each step's `finite` flag is read while the next step runs, so at most one step is in
    flight beyond the one being checked: a signal is acted on after the next step, and no step
    past a non-finite one reaches a checkpoint, an evaluation or the log."""
    tc, state, task = self.config.train, self.state, self.task
    dropout_root = jax.random.key(self.config.seed)
    progress = tqdm(total=tc.num_steps, initial=self.start,
                    disable=not (tc.progress_bar and self.main_process), unit="step",
                    dynamic_ncols=True)
    tokens_since, time_since, last_eval = 0, time.perf_counter(), None
    done, pending = max(self.start, stop), None
    try:
      for step in range(self.start, stop):
        batch = task.train_batch(step)
        if task.carries_state and task.starts_stream(step):
          self.model_state = initial_model_state(state, task.batch_size)
        state.params, state.opt_state, metrics, self.model_state = self.train_step(
            state.params, state.opt_state, batch, jax.random.fold_in(dropout_root, step),
            self.model_state)
        done = step + 1
        if pending is not None:
          self._check_step(*pending, writer)
        pending = (done, metrics)
        tokens_since += batch["weights"].size
        progress.update(1)
        preempted = preemption.requested
        log = done % tc.log_every == 0 or done == stop or preempted
        evaluating = done % tc.eval_every == 0 or done == tc.num_steps
        checkpoint = done % tc.checkpoint_every == 0 or done == stop or preempted
        if not (log or evaluating or checkpoint):
          continue
        self._check_step(*pending, writer)
        pending = None
        if log and self.guard.skipped_step != done:
          metrics = {k: float(v) for k, v in jax.device_get(metrics).items() if k != FINITE}
          now = time.perf_counter()
          metrics["tokens_per_sec"] = tokens_since / (now - time_since)
          metrics["learning_rate"] = float(state.schedule(step))
          tokens_since, time_since = 0, now
          if writer:
            writer.write(done, "train", metrics)
          progress.set_postfix(loss=f"{metrics['loss']:.4f}",
                               tok_s=f"{metrics['tokens_per_sec']:.3g}")
        if evaluating:
          last_eval = (done, self._evaluate(done, writer))
          time_since = time.perf_counter()  # Time spent evaluating is not throughput.
        stopping = self.selection.stopped
        if checkpoint or stopping:
          self.save(done)
        if preempted:
          raise Preempted(preemption.signum, done, str(self.checkpoints.directory))
        if stopping:
          print(f"Stopping early at step {done}: {self.selection.evals_since_best} "
                f"evaluations without a better {self.selection.metric}.")
          break
    finally:
      progress.close()
    return done, last_eval

  def _evaluate(self, done: int, writer: MetricsWriter | None) -> dict[str, float]:
    metrics = evaluate(self.eval_step, self.state, self.task)
    if writer:
      writer.write(done, "eval", metrics)
    nonfinite = strict_json(metrics).get("nonfinite")
    if nonfinite and self.main_process:
      print(f"The evaluation at step {done} is not finite ({nonfinite}); it is logged and is "
            "never the best.")
    self.best.update(done, self.state.checkpoint_tree(), metrics)
    return metrics

  def _finish(self, final_step: int, last_eval) -> dict[str, Any]:
    run_eval = lambda split=None: evaluate(self.eval_step, self.state, self.task, split)
    eval_metrics = last_eval[1] if last_eval and last_eval[0] == final_step else run_eval()
    stopped_early = self.selection.stopped
    result = {
        "step": final_step,
        "completed": final_step >= self.config.train.num_steps or stopped_early,
        "stopped_early": stopped_early,
        "eval": eval_metrics,
        "task": self.task.name,
        "cell": self.config.model.cell,
        "headline": self.task.headline,
        "environment": environment(),
    }
    if len(self.task.eval_splits) > 1:
      result["splits"] = {split: run_eval(split) for split in self.task.eval_splits[1:]}
    score_splits = lambda tree: {
        split: evaluate(self.eval_step, dataclasses.replace(self.state, params=tree["params"]),
                        self.task, split) for split in self.task.eval_splits[1:]}
    result["best"] = self.best.entry(self.state.checkpoint_tree(), final_step,
                                     result.get("splits"), score_splits)
    if self.task.describe():
      result["data"] = self.task.describe()  # Which source and split the numbers are of.
    final = self.task.final_evaluation(self.state.model())
    if final is not None:
      result["final_evaluation"] = final
    if self.main_process:
      path = self.workdir / FINAL_EVAL_FILE
      lost = self.best.lost_entries(path)
      if lost:
        result["lost_best"] = lost  # Recorded results are never erased.
      path.write_text(json.dumps(strict_json(result), indent=2, allow_nan=False))
      plot_run(read_metrics(self.workdir / METRICS_FILE), self.task.headline,
               self.workdir / workdir_lib.LOSS_CURVE_FILE,
               title=f"{self.task.name} / {self.config.model.cell}")
    return result
