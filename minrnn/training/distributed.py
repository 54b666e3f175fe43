"""Training on many devices and hosts with JAX's own sharding: meshes, rules, batches, startup.

A run lays its devices out in a mesh with named axes:

- `data`: the batch is split over it; parameters and optimizer state are replicated over it;
- `sequence` (optional): the time axis is split over it, and the recurrences scan it with
  `minrnn.ops.sequence_parallel` (register it under the model's `implementation` name);
- `model` (optional): large parameters are split over it by `DEFAULT_RULES`.

The same global batch gives the same loss on 1 and N devices: only where the numbers live
changes, and XLA inserts the collectives (`jax.jit` with `NamedSharding`s).

Several processes (one per host, or several on one machine for a test) each run the same
program; `initialize()` connects them through `jax.distributed` before anything touches a
device. Batches are pure functions of `(seed, step)`, so every process can build the same global
batch and `shard_batch` keeps only the slices its own devices hold.

The hooks of a training loop, in order:

    initialize()                                       # before the first jax call
    mesh = make_mesh({"data": -1})
    shardings = train_shardings(mesh, params, tx)
    params = put(params, shardings.params)
    opt_state = init_opt_state(tx, params, shardings)
    # Checkpoints restore onto these arrays' shardings, whatever device count wrote them.
    step = jit_train_step(train_step, shardings)
    params, opt_state, metrics = step(params, opt_state, shard_batch(batch, mesh), key)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
SEQUENCE_AXIS = "sequence"
MODEL_AXIS = "model"

# A config's `mesh` section: every axis, so that each can be set on the command line.
MESH_DEFAULTS = {DATA_AXIS: -1, SEQUENCE_AXIS: 1, MODEL_AXIS: 1}

# Environment variables read by `initialize` when its arguments are None.
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"

# (regular expression searched in a parameter's path such as "blocks/0/mlp/up/kernel",
#  PartitionSpec); the first match wins, parameters matching none are replicated.
Rules = Sequence[tuple[str, P]]

# Splits the wide matrices over `model` (Megatron-style: the gated MLP's hidden units, the
# cell projection's outputs, the vocabulary). Only takes effect on a mesh with a `model` axis.
DEFAULT_RULES: Rules = (
    (r"embed/embedding$", P(MODEL_AXIS, None)),
    (r"mlp/down/kernel$", P(MODEL_AXIS, None)),
    (r"(mlp/up|cell/proj)/kernel$", P(None, MODEL_AXIS)),
    (r"(mlp/up|cell/proj)/bias$", P(MODEL_AXIS)),
)


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    cluster_detection: bool = False,
) -> bool:
  """Connects this process to the others of a multi-process run (`jax.distributed`).

  Call it before any other JAX call. Arguments that are None are read from the environment:
  `JAX_COORDINATOR_ADDRESS` (`host:port` of process 0), `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`.
  Without a coordinator address it does nothing (a single-process run), unless
  `cluster_detection` asks JAX to find the setup from SLURM, Open MPI, Kubernetes or a TPU pod.

  Returns:
    True if `jax.distributed` was initialised, False for a single-process run.
  """
  coordinator_address = coordinator_address or os.environ.get(COORDINATOR_ENV)
  if coordinator_address is None:
    if cluster_detection:
      jax.distributed.initialize(local_device_ids=local_device_ids)
      return True
    return False
  if num_processes is None:
    num_processes = _int_from_env(NUM_PROCESSES_ENV)
  if process_id is None:
    process_id = _int_from_env(PROCESS_ID_ENV)
  if not 0 <= process_id < num_processes:
    raise ValueError(
        f"process_id must be in [0, num_processes={num_processes}), got {process_id}.")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id,
                             local_device_ids=local_device_ids)
  return True


def _int_from_env(name: str) -> int:
  value = os.environ.get(name)
  if value is None:
    raise ValueError(
        f"A coordinator address is set but {name} is not: every process of a multi-process "
        f"run needs {NUM_PROCESSES_ENV} (how many processes) and {PROCESS_ID_ENV} (this one's "
        "rank, from 0), as environment variables or arguments of initialize().")
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"{name} must be an integer, got {value!r}.") from None


def make_mesh(axes: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A device mesh with the named axes, e.g. `{"data": -1}` or `{"data": 2, "model": 4}`.

  Args:
    axes: axis name -> size, outermost first (put `data` first: it is the axis that crosses
      hosts). One size may be -1: all the devices the others leave. A config section (an
      `ml_collections.ConfigDict`) works as well as a dict.
    devices: the devices to lay out (default: all devices of all processes).

  Returns:
    A `jax.sharding.Mesh` whose axes are in automatic (compiler-chosen) sharding mode.
  """
  devices = list(jax.devices() if devices is None else devices)
  names = tuple(axes.keys())
  sizes = [int(axes[name]) for name in names]
  if not names:
    raise ValueError('The mesh needs at least one axis, e.g. {"data": -1}.')
  if sizes.count(-1) > 1 or any(s < 1 and s != -1 for s in sizes):
    raise ValueError(
        f"Mesh axis sizes must be positive, with at most one -1 (the rest), got {dict(axes)}.")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(
          f"The mesh {dict(axes)} cannot use all {len(devices)} devices: the fixed axes "
          f"multiply to {known}, which does not divide {len(devices)}.")
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ValueError(
        f"The mesh {dict(zip(names, sizes))} has {math.prod(sizes)} devices but there are "
        f"{len(devices)}; make the sizes multiply to {len(devices)} or set one to -1.")
  return jax.make_mesh(tuple(sizes), names, axis_types=(jax.sharding.AxisType.Auto,) * len(names),
                       devices=devices)


def _path_name(path) -> str:
  keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
  # Flax variables hold their array under `value`; rules name the parameter, not that field.
  if keys and keys[-1] == "value":
    keys = keys[:-1]
  return "/".join(keys)


def _fit_spec(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
  """`spec` with the dimensions it cannot split (axis absent or not dividing) replicated."""
  fitted = []
  for i, size in enumerate(shape):
    axis = spec[i] if i < len(spec) else None
    names = () if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    if any(n not in mesh.shape for n in names):
      axis = None
    elif names and size % math.prod(mesh.shape[n] for n in names):
      axis = None
    fitted.append(axis)
  while fitted and fitted[-1] is None:
    fitted.pop()
  return P(*fitted)


def param_shardings(params: Any, mesh: Mesh, rules: Rules = DEFAULT_RULES) -> Any:
  """A `NamedSharding` for every array of `params`, by the first rule its path matches.

  A rule's dimension is split only if the mesh has that axis and its size divides the
  dimension; otherwise that dimension is replicated, so one set of rules serves every mesh
  (on a mesh without `model`, the default rules replicate everything).
  """
  def sharding(path, x):
    name = _path_name(path)
    for pattern, spec in rules:
      if re.search(pattern, name):
        return NamedSharding(mesh, _fit_spec(spec, np.shape(x), mesh))
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map_with_path(sharding, params)


def opt_state_shardings(tx: optax.GradientTransformation, params: Any,
                        params_shardings: Any, mesh: Mesh) -> Any:
  """Shardings of `tx.init(params)`: each parameter-shaped entry (Adam's moments) follows its
  parameter's sharding; the rest (step counts, scalars) is replicated."""
  abstract = jax.eval_shape(tx.init, params)
  replicated = NamedSharding(mesh, P())
  return optax.tree_map_params(tx, lambda _, sharding: sharding, abstract, params_shardings,
                               transform_non_params=lambda _: replicated)


def batch_sharding(mesh: Mesh, data_axis: str | None = DATA_AXIS,
                   sequence_axis: str | None = None) -> NamedSharding:
  """Splits arrays `(batch, time, ...)` over `data_axis` and, if given, time over
  `sequence_axis`. An axis the mesh lacks is not split over."""
  def present(axis):
    return axis if axis in mesh.axis_names else None

  return NamedSharding(mesh, P(present(data_axis), present(sequence_axis)))


@dataclasses.dataclass(frozen=True)
class TrainShardings:
  """Where a training step's inputs and outputs live; pass them to `jax.jit`.

  `params` and `opt_state` are pytrees of `NamedSharding` shaped like the parameters and the
  optimizer state; `batch` applies to every array of a batch; `replicated` is for keys and
  metrics.
  """

  mesh: Mesh
  params: Any
  opt_state: Any
  batch: NamedSharding
  replicated: NamedSharding

  def put_batch(self, batch: Mapping[str, Any]) -> dict[str, jax.Array]:
    """The global batch (host arrays, the same on every process) laid out by `self.batch`;
    arrays of rank 1 `(batch,)` are split over its first axis only."""
    return _put_batch(batch, self.batch)


def train_shardings(mesh: Mesh, params: Any, tx: optax.GradientTransformation, *,
                    rules: Rules = DEFAULT_RULES, data_axis: str | None = DATA_AXIS,
                    sequence_axis: str | None = None) -> TrainShardings:
  """The shardings of a training step over `mesh` (see the module docstring for their use)."""
  shardings = param_shardings(params, mesh, rules)
  return TrainShardings(
      mesh=mesh,
      params=shardings,
      opt_state=opt_state_shardings(tx, params, shardings, mesh),
      batch=batch_sharding(mesh, data_axis, sequence_axis),
      replicated=NamedSharding(mesh, P()),
  )


def init_opt_state(tx: optax.GradientTransformation, params: Any,
                   shardings: TrainShardings) -> Any:
  """`tx.init(params)` laid out by `shardings.opt_state`, computed where it will live (no
  host round trip, so it works when the state spans several processes)."""
  return jax.jit(tx.init, out_shardings=shardings.opt_state)(params)


def _put_array(x: Any, sharding: NamedSharding) -> jax.Array:
  # Each process holds the whole value; it hands over only the slices of its own devices, which
  # works whether or not the sharding spans other processes' devices.
  host = np.asarray(x)
  for dim, axis in enumerate(sharding.spec):
    names = () if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    split = math.prod(sharding.mesh.shape[n] for n in names)
    if dim < host.ndim and host.shape[dim] % split:
      raise ValueError(
          f"An array of shape {host.shape} cannot be split {split} ways along axis {dim} "
          f"(mesh axes {names}); make that size (the global batch for axis 0, the sequence "
          f"length for axis 1) a multiple of {split}.")
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def put(tree: Any, shardings: Any) -> Any:
  """Places every array of `tree` (host or device arrays, the same value on every process)
  with the matching sharding of `shardings`, a pytree shaped like `tree`."""
  return jax.tree.map(_put_array, tree, shardings)


def shard_batch(batch: Mapping[str, Any], mesh: Mesh, *, data_axis: str | None = DATA_AXIS,
                sequence_axis: str | None = None) -> dict[str, jax.Array]:
  """The global batch (host arrays `(batch, time, ...)` or `(batch,)`, the same on every
  process) as arrays split over the mesh; each process transfers only its own devices' slices."""
  return _put_batch(batch, batch_sharding(mesh, data_axis, sequence_axis))


def _put_batch(batch: Mapping[str, Any], sharding: NamedSharding) -> dict[str, jax.Array]:
  spec = sharding.spec
  return {key: _put_array(value, NamedSharding(sharding.mesh, P(*spec[:np.ndim(value)])))
          for key, value in batch.items()}


def carry_shardings(tree: Any, mesh: Mesh, data_axis: str | None = DATA_AXIS) -> Any:
  """Shardings of a recurrent state carried from one batch to the next (arrays whose first axis
  is the batch): split over `data_axis` where it divides that axis, replicated otherwise."""
  def sharding(x):
    split = (data_axis in mesh.axis_names and np.ndim(x) > 0
             and np.shape(x)[0] % mesh.shape[data_axis] == 0)
    return NamedSharding(mesh, P(data_axis) if split else P())

  return jax.tree.map(sharding, tree)


def abstract(tree: Any, shardings: Any) -> Any:
  """`jax.ShapeDtypeStruct`s of `tree` carrying `shardings`: a checkpoint-restore target that
  lays the restored arrays out on this run's mesh without first materialising `tree`."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s),
                      tree, shardings)


def jit_train_step(train_step: Callable, shardings: TrainShardings, *,
                   donate: bool = True) -> Callable:
  """Compiles `train_step(params, opt_state, batch, key) -> (params, opt_state, metrics)` to
  run over `shardings.mesh`: inputs and outputs keep the layouts `shardings` gives them."""
  return jax.jit(
      train_step,
      in_shardings=(shardings.params, shardings.opt_state, shardings.batch,
                    shardings.replicated),
      out_shardings=(shardings.params, shardings.opt_state, shardings.replicated),
      donate_argnums=(0, 1) if donate else (),
  )
