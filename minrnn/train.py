"""Trains a language model from a config file; resumes automatically from its workdir.

    python -m minrnn.train --config configs/shakespeare/mingru.py --workdir runs/shakespeare \
        [--config.train.num_steps=1000 ...]

A `:variant` after the config path picks a variant the file defines, e.g.
`configs/shakespeare/mingru.py:cpu`. From Python: `minrnn.train.train(config, workdir)`.

The workdir receives: `config.json` (the resolved config), `metrics.jsonl` and `tensorboard/`
(training and evaluation metrics), `checkpoints/` (the last few) and `best/` (lowest
evaluation loss), `final_eval.json` and `loss_curve.png`. Batches and dropout keys are pure
functions of `(seed, step)`, so a run that is stopped and resumed computes exactly the losses of
one that never stopped. `train.stop_at_step` stops early on purpose (to split a long run into
chunks that fit a time limit); the learning-rate schedule still follows `train.num_steps`.

Tasks other than language modelling use the same loop through optional methods of the task
object (`minrnn.rl.task.DecisionTask` is one): `build_model(model_config, seed)` builds the
model, `loss(model, batch, rngs)` is the training loss, `eval_sums(model, batch)` returns summed
evaluation statistics that `eval_metrics(totals)` turns into metrics (with a `loss`), and
`final_evaluation(model)` (e.g. environment rollouts) runs once at the end; its result is stored
under `final_evaluation` in `final_eval.json`. Without them the task is a token LM task,
scored through `target_log_probs`: a model may score only the targets itself (SRU++'s adaptive
softmax does, and so do the full-softmax models with `model.softmax_chunk_size`, so
WikiText-103's `(batch, time, 267735)` scores are never built), else its full scores are used.

Long-context language modelling (`minrnn.data.segments.SegmentStream`, a task with
`carries_state = True`) trains by truncated backpropagation through time: each batch is the next
segment of every row's stream, and the model state after it (recurrent states, attention memory)
starts the next batch, with gradients stopped between segments. The state is checkpointed with
the parameters, so resumed runs stay exact. Evaluation runs over the whole split with the state
carried, and reports bits per token (bits per character on enwik8) and perplexity; the final
evaluation also scores every other evaluation split of the task (e.g. test) under `splits`.

Every path runs over a device mesh (`minrnn.distributed`): `config.mesh` names its axes, e.g.
`--config.mesh.data=4 --config.mesh.sequence=2` (default: every device on `data`). The batch
(and a segment task's carried state) is split over `data`, time over `sequence` when it is
larger than 1 (the recurrences then scan through `minrnn.ops.sequence_parallel`), and the
parameters and optimizer state follow `distributed.DEFAULT_RULES` (split over a `model` axis,
else replicated). The losses are those of one device for the same global batch, and checkpoints
restore onto any device count. Run one process per host (`jax.distributed`, set up from
`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`); all of them save the
checkpoints into the shared workdir, process 0 alone writes the other outputs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import platform
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from tqdm.auto import tqdm

from minrnn import distributed
from minrnn.checkpointing import Checkpoints
from minrnn.data import Task, make_task
from minrnn.metrics import METRICS_FILE, MetricsWriter, read_metrics
from minrnn.models import LanguageModel, build_model
from minrnn.ops import SequenceParallel
from minrnn.optimizer import make_optimizer
from minrnn.plots import plot_loss_curve

CONFIG_FILE = "config.json"
FINAL_EVAL_FILE = "final_eval.json"
LOSS_CURVE_FILE = "loss_curve.png"
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"


@dataclasses.dataclass
class TrainState:
  """Everything a run needs besides its config. `params` and `opt_state` are checkpointed;
  `graphdef` and `rest` (non-parameter model state) are rebuilt from the config. With
  `shardings` (a run over a device mesh) the parameters and optimizer state are laid out by it,
  and the step functions below compile for that mesh."""

  graphdef: Any
  rest: Any
  params: Any
  opt_state: Any
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  shardings: distributed.TrainShardings | None = None

  def model(self) -> LanguageModel:
    return nnx.merge(self.graphdef, self.params, self.rest)

  def checkpoint_tree(self) -> dict[str, Any]:
    return {"params": self.params, "opt_state": self.opt_state}


def create_state(config: Any, vocab_size: int, model: nnx.Module | None = None, *,
                 mesh: jax.sharding.Mesh | None = None) -> TrainState:
  """A freshly initialised model (unless given) and optimizer state for `config`, laid out
  over `mesh` (by `minrnn.distributed`'s rules) when given."""
  if model is None:
    model = build_model(config.model, vocab_size, config.seed,
                        implementation=scan_implementation(config, mesh))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx, schedule = make_optimizer(config.train)
  if mesh is None:
    return TrainState(graphdef, rest, params, tx.init(params), tx, schedule)
  shardings = distributed.train_shardings(mesh, params, tx, sequence_axis=_sequence_axis(mesh))
  params = distributed.put(params, shardings.params)
  opt_state = distributed.init_opt_state(tx, params, shardings)
  return TrainState(graphdef, rest, params, opt_state, tx, schedule, shardings)


def _sequence_axis(mesh: jax.sharding.Mesh) -> str | None:
  """The mesh axis time is split over; a size-1 `sequence` axis leaves the plain scan."""
  return (distributed.SEQUENCE_AXIS
          if mesh.shape.get(distributed.SEQUENCE_AXIS, 1) > 1 else None)


def make_mesh(config: Any) -> jax.sharding.Mesh:
  """The device mesh of `config.mesh` (default: all devices on `data`)."""
  return distributed.make_mesh(config.get("mesh") or distributed.MESH_DEFAULTS)


def scan_implementation(config: Any, mesh: jax.sharding.Mesh | None):
  """The model's linear-scan path: `config.model.implementation`, sent through the
  sequence-parallel scan (as each chunk's path) when the mesh splits time."""
  implementation = config.model.get("implementation")
  sequence_axis = None if mesh is None else _sequence_axis(mesh)
  if sequence_axis is None:
    return implementation
  return SequenceParallel(
      mesh, sequence_axis, inner=implementation,
      batch_axis=distributed.DATA_AXIS if distributed.DATA_AXIS in mesh.axis_names else None)


def _jit(step, shardings: distributed.TrainShardings | None, layout, *, batch_arg: int,
         donate_argnums: tuple[int, ...] = ()):
  """`jax.jit(step)`, over `shardings.mesh` when given, with the `(in_shardings,
  out_shardings)` that `layout(shardings)` returns (None for an argument: its own sharding).

  The returned function takes the batch (argument `batch_arg`) as host arrays, the whole global
  batch in every process, and hands each device its slice.
  """
  if shardings is None:
    jitted = jax.jit(step, donate_argnums=donate_argnums)
    place = lambda batch: {k: jnp.asarray(v) for k, v in batch.items()}
  else:
    in_shardings, out_shardings = layout(shardings)
    jitted = jax.jit(step, in_shardings=in_shardings, out_shardings=out_shardings,
                     donate_argnums=donate_argnums)
    place = shardings.put_batch

  def run(*args):
    args = list(args)
    args[batch_arg] = place(args[batch_arg])
    return jitted(*args)

  return run


def target_log_probs(model: nnx.Module, inputs: jax.Array, targets: jax.Array,
                     model_state: Any, rngs: nnx.Rngs | None = None
                     ) -> tuple[jax.Array, jax.Array, Any]:
  """`(log_probs, top, model_state)` of a language model on one batch: log p(target) float32
  `(B, T)`, whether the target is a most likely token bool `(B, T)`, and the state after it.

  Every model `build_model` makes provides `target_log_probs(inputs, targets, state, *,
  rngs)`: SRU++ (`minrnn.srupp`; its adaptive softmax scores only the targets, in chunks),
  and the full-softmax `LanguageModel` and `TransformerLM`, which score chunks of
  `model.softmax_chunk_size` positions when it is set (WikiText-103's minGRU) and otherwise
  the full logits exactly as below. In chunks the `(B, T, vocab)` scores are never built. A
  model without the method is scored from the full logits of `model(inputs, state,
  rngs=rngs)`.
  """
  if hasattr(model, "target_log_probs"):
    return model.target_log_probs(inputs, targets, model_state, rngs=rngs)
  logits, new_state = model(inputs, model_state, rngs=rngs)
  log_probs = -optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  return log_probs, jnp.argmax(logits, -1) == targets, new_state


def make_train_step(state: TrainState, task_loss=None):
  """A jitted `(params, opt_state, batch, dropout_key, model_state) -> (params, opt_state,
  metrics, model_state)`.

  `model_state` is the model's state after the previous segment for tasks that carry it (one
  segment of truncated backpropagation through time; the returned state has its gradient
  stopped), else None and None comes back. The loss is next-token cross-entropy (from
  `target_log_probs`), or `task_loss(model, batch, rngs)` for tasks that bring their own
  (they carry no state). On a mesh, `model_state` keeps the layout it comes with (see
  `distributed.carry_shardings`).
  """
  graphdef, rest, tx = state.graphdef, state.rest, state.tx

  def train_step(params, opt_state, batch, dropout_key, model_state):
    def loss_fn(params):
      model = nnx.merge(graphdef, params, rest)
      rngs = nnx.Rngs(dropout=dropout_key)
      if task_loss is not None:
        return task_loss(model, batch, rngs), None
      log_probs, _, new_state = target_log_probs(model, batch["inputs"], batch["targets"],
                                                 model_state, rngs)
      weights = batch["weights"]
      # Mean cross-entropy (nats) over the positions with weight > 0.
      loss = -jnp.sum(log_probs * weights) / jnp.maximum(jnp.sum(weights), 1.0)
      return loss, (None if model_state is None else new_state)

    (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    return params, opt_state, metrics, jax.lax.stop_gradient(new_state)

  return _jit(train_step, state.shardings,
              lambda s: ((s.params, s.opt_state, s.batch, s.replicated, None),
                         (s.params, s.opt_state, s.replicated, None)),
              batch_arg=2, donate_argnums=(0, 1))


def make_eval_step(state: TrainState, task_eval_sums=None):
  """A jitted `(params, batch, model_state) -> (sums, model_state)`: sums of loss, weights and
  correct predictions (and of rows with every scored token right), or `task_eval_sums(model,
  batch)` when given. `model_state` as in `make_train_step`."""
  graphdef, rest = state.graphdef, state.rest

  def eval_step(params, batch, model_state):
    model = nnx.merge(graphdef, params, rest)
    if task_eval_sums is not None:
      return task_eval_sums(model, batch), None
    log_probs, correct, new_state = target_log_probs(model, batch["inputs"], batch["targets"],
                                                     model_state)
    weights = batch["weights"]
    scored_rows = jnp.any(weights > 0, axis=1)
    sums = {
        "loss": -jnp.sum(log_probs * weights),
        "weight": jnp.sum(weights),
        "correct": jnp.sum(correct * weights),
        # A row is right when every scored position is (the selective-copy success metric).
        "rows_correct": jnp.sum(jnp.all(correct | (weights == 0), axis=1) & scored_rows),
        "rows": jnp.sum(scored_rows),
    }
    return sums, (None if model_state is None else new_state)

  return _jit(eval_step, state.shardings,
              lambda s: ((s.params, s.batch, None), (s.replicated, None)), batch_arg=1)


def initial_model_state(state: TrainState, batch_size: int) -> Any:
  """The model's state before the first segment, split over `data` on a mesh."""
  model_state = state.model().initialize_state(batch_size)
  if state.shardings is None:
    return model_state
  return distributed.put(model_state,
                         distributed.carry_shardings(model_state, state.shardings.mesh))


def evaluate(eval_step, state: TrainState, task: Task, split: str | None = None
             ) -> dict[str, float]:
  """Metrics over a whole evaluation split (the task's default when None).

  Segment-stream tasks carry the model state from each segment to the next (each row starts
  from a fresh state) and report loss (nats per token), bits_per_token, perplexity and
  accuracy. Other tasks report loss (nats per scored token), bits_per_token, accuracy (scored
  tokens predicted right) and sequence_accuracy (rows with every scored token right), or their
  own `eval_metrics`.
  """
  carries = getattr(task, "carries_state", False)
  model_state = initial_model_state(state, task.eval_batch_size) if carries else None
  batches = task.eval_batches(split) if carries else task.eval_batches()
  totals = None
  for batch in batches:
    sums, model_state = eval_step(state.params, batch, model_state)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  if totals is None:
    raise ValueError(f"The {task.name} task has no evaluation batches; check data.eval_batches.")
  totals = {k: float(v) for k, v in jax.device_get(totals).items()}
  if hasattr(task, "eval_metrics"):
    return task.eval_metrics(totals)
  loss = totals["loss"] / totals["weight"]
  metrics = {"loss": loss, "bits_per_token": loss / math.log(2),
             "accuracy": totals["correct"] / totals["weight"]}
  if carries:
    metrics["perplexity"] = math.exp(loss)
  else:
    metrics["sequence_accuracy"] = totals["rows_correct"] / max(totals["rows"], 1.0)
  return metrics


def _environment() -> dict[str, str]:
  device = jax.devices()[0]
  return {"jax": jax.__version__, "flax": flax.__version__, "backend": jax.default_backend(),
          "device": getattr(device, "device_kind", str(device)),
          "python": platform.python_version()}


def _config_to_json(config: Any) -> str:
  if hasattr(config, "to_json_best_effort"):
    return config.to_json_best_effort(indent=2, sort_keys=True)
  return json.dumps(config, indent=2, sort_keys=True, default=str)


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
    (workdir / CONFIG_FILE).write_text(_config_to_json(config))
  tc = config.train
  stop = tc.num_steps if tc.stop_at_step is None else min(tc.stop_at_step, tc.num_steps)

  mesh = make_mesh(config)
  task = make_task(config.data, config.seed)
  model = (task.build_model(config.model, config.seed,
                            implementation=scan_implementation(config, mesh))
           if hasattr(task, "build_model") else None)
  state = create_state(config, getattr(task, "vocab_size", None), model, mesh=mesh)
  checkpoints = Checkpoints(workdir / CHECKPOINT_DIR, keep=tc.keep_checkpoints)
  best = Checkpoints(workdir / BEST_DIR, keep=1)
  start, best_loss = 0, math.inf
  carries = getattr(task, "carries_state", False)
  # The model state carried from one segment to the next (segment-stream tasks only).
  model_state = initial_model_state(state, task.batch_size) if carries else None

  def checkpoint_tree() -> dict[str, Any]:
    tree = state.checkpoint_tree()
    if carries:
      tree["model_state"] = jax.tree.leaves(model_state)
    return tree

  if checkpoints.latest_step() is not None:
    tree, meta = checkpoints.restore(checkpoints.latest_step(), checkpoint_tree())
    state.params, state.opt_state = tree["params"], tree["opt_state"]
    if carries:
      model_state = jax.tree.unflatten(jax.tree.structure(model_state), tree["model_state"])
    start, best_loss = meta["step"], meta["best_eval_loss"]
    print(f"Resuming from step {start} ({checkpoints.directory}).")

  writer = (MetricsWriter(workdir, tensorboard=tc.tensorboard, resume_step=start)
            if main_process else None)
  train_step = make_train_step(state, getattr(task, "loss", None))
  eval_step = make_eval_step(state, getattr(task, "eval_sums", None))
  run_eval = lambda split=None: evaluate(eval_step, state, task, split)
  dropout_root = jax.random.key(config.seed)

  def save(step: int) -> None:
    checkpoints.save(step, checkpoint_tree(), {"step": step, "best_eval_loss": best_loss})

  progress = tqdm(total=tc.num_steps, initial=start,
                  disable=not (tc.progress_bar and main_process),
                  unit="step", dynamic_ncols=True)
  tokens_since, time_since = 0, time.perf_counter()
  eval_metrics, eval_step_done = None, None
  try:
    for step in range(start, stop):
      batch = task.train_batch(step)
      dropout_key = jax.random.fold_in(dropout_root, step)
      if carries and task.starts_stream(step):
        model_state = initial_model_state(state, task.batch_size)
      state.params, state.opt_state, metrics, model_state = train_step(
          state.params, state.opt_state, batch, dropout_key, model_state)
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
        save(done)
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
      "environment": _environment(),
  }
  if carries:
    result["splits"] = {split: run_eval(split) for split in task.eval_splits[1:]}
  if hasattr(task, "final_evaluation"):
    result["final_evaluation"] = task.final_evaluation(state.model())
  if main_process:
    (workdir / FINAL_EVAL_FILE).write_text(json.dumps(result, indent=2))
    plot_loss_curve(read_metrics(workdir / METRICS_FILE), workdir / LOSS_CURVE_FILE,
                    title=f"{task.name} / {config.model.cell}")
  return result


def _summary(result: dict[str, Any], workdir: pathlib.Path) -> str:
  ev = result["eval"]
  state = "finished" if result["completed"] else "stopped early (resume by running again)"
  if "bits_per_token" not in ev:
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in ev.items())
    final = result.get("final_evaluation", {})
    score = (f" normalised score {final['normalized_score']:.1f}."
             if "normalized_score" in final else "")
    return (f"Step {result['step']} ({state}): eval {metrics}.{score}\n"
            f"Outputs in {workdir.resolve()}, results in {FINAL_EVAL_FILE}.")
  if "perplexity" in ev:
    splits = "".join(
        f"; {name} {m['bits_per_token']:.4f} bits/token, perplexity {m['perplexity']:.3f}"
        for name, m in result.get("splits", {}).items())
    return (f"Step {result['step']} ({state}): eval {ev['bits_per_token']:.4f} bits/token, "
            f"perplexity {ev['perplexity']:.3f}{splits}.\n"
            f"Outputs in {workdir.resolve()}, results in {FINAL_EVAL_FILE}.")
  return (
      f"Step {result['step']} ({state}): eval loss {ev['loss']:.4f} nats "
      f"({ev['bits_per_token']:.3f} bits/token), accuracy {ev['accuracy']:.4f}, "
      f"sequence accuracy {ev['sequence_accuracy']:.4f}.\n"
      f"Outputs in {workdir.resolve()}: {CONFIG_FILE}, {METRICS_FILE}, tensorboard/, "
      f"{CHECKPOINT_DIR}/, {BEST_DIR}/, {FINAL_EVAL_FILE}, {LOSS_CURVE_FILE}."
  )


def main(argv):
  del argv
  # Orbax logs every save at INFO; keep the console to the progress bar unless asked.
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  distributed.initialize()
  workdir = pathlib.Path(_WORKDIR.value)
  result = train(_CONFIG.value, workdir)
  if jax.process_index() == 0:
    print(_summary(result, workdir))


if __name__ == "__main__":
  from absl import app, flags, logging
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file(
      "config", None, "Config file, configs/<task>/<model>.py[:variant].", lock_config=True)
  _WORKDIR = flags.DEFINE_string(
      "workdir", None, "Run directory for checkpoints, metrics and plots; resumed if it exists.")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
