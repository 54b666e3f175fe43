"""The train state and the jitted steps of the one training loop, for any task.

The task says how a model is scored (`minrnn.tasks.base.Task.loss`, `eval_sums`); these compile
that into a training step (gradient, clipping, optimizer update) and an evaluation step, over a
device mesh when there is one, and sum an evaluation split into metrics.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from minrnn.ops import SequenceParallel
from minrnn.tasks.base import Task
from minrnn.training import distributed
from minrnn.training.optimizer import make_optimizer


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

  def model(self) -> nnx.Module:
    """The model with the current parameters (whatever the task built)."""
    return nnx.merge(self.graphdef, self.params, self.rest)

  def checkpoint_tree(self) -> dict[str, Any]:
    return {"params": self.params, "opt_state": self.opt_state}


def sequence_axis(mesh: jax.sharding.Mesh | None) -> str | None:
  """The mesh axis time is split over; a size-1 `sequence` axis leaves the plain scan."""
  if mesh is None or mesh.shape.get(distributed.SEQUENCE_AXIS, 1) <= 1:
    return None
  return distributed.SEQUENCE_AXIS


def scan_implementation(config: Any, mesh: jax.sharding.Mesh | None) -> Any:
  """The model's linear-scan path: `config.model.implementation`, sent through the
  sequence-parallel scan (as each chunk's path) when the mesh splits time."""
  implementation = config.model.get("implementation")
  axis = sequence_axis(mesh)
  if axis is None:
    return implementation
  return SequenceParallel(
      mesh, axis, inner=implementation,
      batch_axis=distributed.DATA_AXIS if distributed.DATA_AXIS in mesh.axis_names else None)


def create_state(config: Any, task: Task, *, mesh: jax.sharding.Mesh | None = None
                 ) -> TrainState:
  """The task's freshly initialised model and the optimizer state for `config`, laid out over
  `mesh` (by `minrnn.training.distributed`'s rules) when given."""
  model = task.build_model(config.model, config.seed,
                           implementation=scan_implementation(config, mesh))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx, schedule = make_optimizer(config.train)
  if mesh is None:
    return TrainState(graphdef, rest, params, tx.init(params), tx, schedule)
  shardings = distributed.train_shardings(mesh, params, tx, sequence_axis=sequence_axis(mesh))
  params = distributed.put(params, shardings.params)
  opt_state = distributed.init_opt_state(tx, params, shardings)
  return TrainState(graphdef, rest, params, opt_state, tx, schedule, shardings)


class _Step:
  """A jitted step that takes its batch (argument `batch_arg`) as host arrays, the whole global
  batch in every process, and hands each device its slice."""

  def __init__(self, jitted, place, batch_arg: int):
    self.jitted, self.place, self.batch_arg = jitted, place, batch_arg

  def __call__(self, *args):
    args = list(args)
    args[self.batch_arg] = self.place(args[self.batch_arg])
    return self.jitted(*args)

  def shapes(self, *args):
    """The outputs' shapes and dtypes, from a trace alone (nothing runs on a device)."""
    args = list(args)
    args[self.batch_arg] = {k: jax.ShapeDtypeStruct(v.shape, v.dtype)
                            for k, v in args[self.batch_arg].items()}
    return jax.eval_shape(self.jitted, *args)


def _jit(step, shardings: distributed.TrainShardings | None, layout, *, batch_arg: int,
         donate_argnums: tuple[int, ...] = ()) -> _Step:
  """`jax.jit(step)`, over `shardings.mesh` when given, with the `(in_shardings,
  out_shardings)` that `layout(shardings)` returns (None for an argument: its own sharding)."""
  if shardings is None:
    return _Step(jax.jit(step, donate_argnums=donate_argnums),
                 lambda batch: {k: jnp.asarray(v) for k, v in batch.items()}, batch_arg)
  in_shardings, out_shardings = layout(shardings)
  jitted = jax.jit(step, in_shardings=in_shardings, out_shardings=out_shardings,
                   donate_argnums=donate_argnums)
  return _Step(jitted, shardings.put_batch, batch_arg)


# The training step's metric that says whether the step was applied (see `make_train_step`).
FINITE = "finite"


def _all_finite(tree: Any) -> jax.Array:
  """Whether every floating-point leaf of `tree` is finite (True for a tree without any)."""
  flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
           if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.all(jnp.stack(flags)) if flags else jnp.array(True)


def _mean(sums: dict[str, jax.Array]) -> jax.Array:
  """The training loss of `Task.loss`'s sums: float32 `loss / max(weight, 1)`."""
  return sums["loss"] / jnp.maximum(sums["weight"], 1.0)


def _micro_batches(tree: Any, steps: int, batch_size: int, what: str) -> Any:
  """Every leaf `(batch, ...)` as `(steps, batch // steps, ...)`: micro-batch `i` holds rows
  `i, i + steps, i + 2 * steps, ...`, so each device's rows of a batch split over the mesh's
  `data` axis fall evenly into every micro-batch."""
  def split(x):
    if x.ndim == 0 or x.shape[0] != batch_size:
      raise ValueError(f"Gradient accumulation splits every array of the {what} along its "
                       f"first axis, the batch of {batch_size}; got one of shape {x.shape}.")
    x = x.reshape(batch_size // steps, steps, *x.shape[1:])
    return jnp.swapaxes(x, 0, 1)
  return jax.tree.map(split, tree)


def _whole_batch(tree: Any) -> Any:
  """The inverse of `_micro_batches`."""
  def join(x):
    x = jnp.swapaxes(x, 0, 1)
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
  return jax.tree.map(join, tree)


def make_train_step(state: TrainState, task: Task, grad_accum_steps: int = 1):
  """A jitted `(params, opt_state, batch, dropout_key, model_state) -> (params, opt_state,
  metrics, model_state)` of `task.loss`. `metrics` holds the float32 `loss` and `grad_norm`
  and the bool `finite` (`FINITE`): False when the loss, the gradient norm or the updated
  parameters, optimizer state or model state are not all finite; such a step returns its
  inputs unchanged.

  `model_state` is the model's state after the previous segment for tasks that carry it (one
  segment of truncated backpropagation through time; the returned state has its gradient
  stopped), else None and None comes back. On a mesh, `model_state` keeps the layout it comes
  with (see `distributed.carry_shardings`).

  With `grad_accum_steps = k > 1` the batch (and the model state, batch-major like every
  state) is split into k micro-batches (`_micro_batches`) whose gradients are computed one
  after the other and combined before the one update: each micro-batch's mean loss and gradient
  weighted by its share of the batch's total weight, which is the whole batch's mean loss and
  its gradient even when the micro-batches hold different numbers of scored positions.
  Micro-batch `i` draws its dropout from `fold_in(dropout_key, i)`, so its masks differ from
  the whole batch's; without dropout the step equals the whole batch's up to rounding.
  """
  graphdef, rest, tx = state.graphdef, state.rest, state.tx
  if grad_accum_steps < 1 or task.batch_size % grad_accum_steps:
    raise ValueError(
        f"train.grad_accum_steps={grad_accum_steps} must be a positive divisor of the batch "
        f"size {task.batch_size} (data.batch_size is the whole batch, split into that many "
        "micro-batches); change one of them.")

  def value_and_grad(params, batch, dropout_key, model_state):
    def loss_fn(params):
      model = nnx.merge(graphdef, params, rest)
      sums, new_state = task.loss(model, batch, model_state, nnx.Rngs(dropout=dropout_key))
      return _mean(sums), (sums["weight"], None if model_state is None else new_state)
    return jax.value_and_grad(loss_fn, has_aux=True)(params)

  def accumulated(params, batch, dropout_key, model_state):
    size = task.batch_size
    micro = (_micro_batches(batch, grad_accum_steps, size, "batch"),
             jnp.arange(grad_accum_steps),
             _micro_batches(model_state, grad_accum_steps, size, "model state"))

    def body(totals, inputs):
      batch_i, i, state_i = inputs
      (loss, (weight, new_state)), grads = value_and_grad(
          params, batch_i, jax.random.fold_in(dropout_key, i), state_i)
      # Weighted by the micro-batch's weight, then divided by the total below: the whole
      # batch's mean (a micro-batch with no scored position adds nothing).
      totals = jax.tree.map(lambda t, x: t + weight * x, totals, {"loss": loss, "grads": grads})
      return totals, (weight, new_state)

    zeros = {"loss": jnp.zeros((), jnp.float32), "grads": jax.tree.map(jnp.zeros_like, params)}
    totals, (weights, new_states) = jax.lax.scan(body, zeros, micro)
    scale = 1.0 / jnp.maximum(jnp.sum(weights), 1.0)
    totals = jax.tree.map(lambda t: t * scale, totals)
    new_state = None if model_state is None else _whole_batch(new_states)
    return (totals["loss"], (None, new_state)), totals["grads"]

  compute = value_and_grad if grad_accum_steps == 1 else accumulated

  def train_step(params, opt_state, batch, dropout_key, model_state):
    (loss, (_, new_state)), grads = compute(params, batch, dropout_key, model_state)
    grad_norm = optax.tree.norm(grads)
    updates, new_opt_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    # A step whose loss, gradient or result is not finite changes nothing (the loop stops or
    # skips it), so the state in memory, and every checkpoint of it, stays finite.
    finite = (jnp.isfinite(loss) & jnp.isfinite(grad_norm) & _all_finite(new_params)
              & _all_finite(new_opt_state) & _all_finite(new_state))
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    params, opt_state = keep(new_params, params), keep(new_opt_state, opt_state)
    if model_state is not None:
      new_state = keep(new_state, model_state)
    metrics = {"loss": loss, "grad_norm": grad_norm, FINITE: finite}
    return params, opt_state, metrics, jax.lax.stop_gradient(new_state)

  # The batch keeps the layout `put_batch` gives it (None): one sharding for every array would
  # not fit the `(batch,)` arrays (a classifier's labels and lengths) beside `(batch, time)`.
  return _jit(train_step, state.shardings,
              lambda s: ((s.params, s.opt_state, None, s.replicated, None),
                         (s.params, s.opt_state, s.replicated, None)),
              batch_arg=2, donate_argnums=(0, 1))


def make_eval_step(state: TrainState, task: Task):
  """A jitted `(params, batch, model_state) -> (sums, model_state)` of `task.eval_sums`;
  `model_state` as in `make_train_step`."""
  graphdef, rest = state.graphdef, state.rest

  def eval_step(params, batch, model_state):
    sums, new_state = task.eval_sums(nnx.merge(graphdef, params, rest), batch, model_state)
    return sums, (None if model_state is None else new_state)

  return _jit(eval_step, state.shardings,
              lambda s: ((s.params, None, None), (s.replicated, None)), batch_arg=1)


def initial_model_state(state: TrainState, batch_size: int) -> Any:
  """The model's state before the first segment, split over `data` on a mesh."""
  model_state = state.model().initialize_state(batch_size)
  if state.shardings is None:
    return model_state
  return distributed.put(model_state,
                         distributed.carry_shardings(model_state, state.shardings.mesh))


def evaluate(eval_step, state: TrainState, task: Task, split: str | None = None
             ) -> dict[str, float]:
  """`task.eval_metrics` over a whole evaluation split (the task's first when None). Tasks
  that carry state carry it from each segment to the next (each row starts fresh)."""
  model_state = (initial_model_state(state, task.eval_batch_size) if task.carries_state
                 else None)
  totals = None
  for batch in task.eval_batches(split):
    sums, model_state = eval_step(state.params, batch, model_state)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  if totals is None:
    raise ValueError(f"The {task.name} task has no evaluation batches; check data.eval_batches.")
  return task.eval_metrics({k: float(v) for k, v in jax.device_get(totals).items()})
