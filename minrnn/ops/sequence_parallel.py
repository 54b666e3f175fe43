"""The linear recurrence `h_t = a_t * h_{t-1} + b_t` with its time axis sharded over devices.

Each device holds a contiguous chunk of time. The scan runs in three stages inside `shard_map`:

1. every device scans its own chunk from a zero state with `minrnn.ops.linear_scan` (any
   execution path: the Pallas kernel on GPU), and takes the chunk's product of `a`;
2. the devices all-gather these `(product, final state)` pairs, one `(batch, features)` pair per
   chunk, and each one combines the pairs of the chunks before it (after it when `reverse`) with
   the initial state into its incoming carry;
3. every device corrects its chunk: `h_t += (prod_{s <= t in chunk} a_s) * carry_in`.

Each device sends `2 * batch * features` numbers, whatever the sequence length.
Gradients come from JAX's autodiff through `shard_map` and the collectives.

Cells use it through a named execution path: `register(mesh, "sequence")` adds a
`minrnn.ops.linear_scan` implementation, so `MinGRU(..., implementation="sequence_parallel")`,
or a model config's `implementation`, sends every layer's scan through it. The path runs
inside `jax.jit`: inputs that are not yet sharded over time are resharded by XLA.

SRU is not linear in its state (its gates read `c_{t-1}`), so it cannot be split this way; it
shards over batch and features only.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P

from minrnn.ops.linear_scan import linear_scan, register_implementation, resolve_implementation

DEFAULT_NAME = "sequence_parallel"
# Chunk paths that need a > 0, b > 0 and h0 >= 0 (see `minrnn.ops.linear_scan`).
LOG_SPACE_PATHS = ("log", "heinsen")

if hasattr(jax, "shard_map"):
  _shard_map = jax.shard_map
else:  # jax < 0.7 has it only in the experimental namespace.
  from jax.experimental.shard_map import shard_map as _experimental_shard_map

  def _shard_map(f, *, mesh, in_specs, out_specs, check_vma):
    return _experimental_shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                                   check_rep=check_vma)


def _check_mesh(mesh: Mesh, axis_name: str, batch_axis: str | None) -> None:
  for role, name in (("axis_name", axis_name), ("batch_axis", batch_axis)):
    if name is not None and name not in mesh.axis_names:
      raise ValueError(
          f"sequence_parallel_linear_scan: {role}={name!r} is not an axis of the mesh, whose "
          f"axes are {mesh.axis_names}. Build the mesh with that axis, e.g. "
          f"minrnn.distributed.make_mesh({{{name!r}: {mesh.devices.size}}}).")
  if batch_axis == axis_name:
    raise ValueError(
        f"sequence_parallel_linear_scan: batch_axis and axis_name are both {axis_name!r}; "
        "time and batch must be sharded over different mesh axes.")


def _combine(earlier, later):
  """Composes two affine maps `h -> a*h + b`, `earlier` applied first."""
  a1, b1 = earlier
  a2, b2 = later
  return a1 * a2, a2 * b1 + b2


def _local_scan(a, b, h0, *, axis_name, reverse, implementation):
  """Runs on one device: a, b its `(batch, chunk, features)`; h0 the global `(batch, features)`."""
  # An explicit zero state derived from `a`, so that it is typed as varying over the devices
  # like the chunk it starts (a `lax.scan` carry must keep its type).
  h, h_end = linear_scan(a, b, jnp.zeros_like(a[:, 0]), reverse=reverse,
                         implementation=implementation)
  # Products of `a` from the chunk's start (its end when reverse) up to each step.
  decay = jax.lax.cumprod(a, axis=1, reverse=reverse)
  chunk_decay = decay[:, 0] if reverse else decay[:, -1]
  # (num_chunks, batch, features), in time order on every device.
  decays = jax.lax.all_gather(chunk_decay, axis_name)
  ends = jax.lax.all_gather(h_end, axis_name)
  # Fold h0 into the first chunk (the last when reverse), then combine chunk by chunk: entry i
  # is the state after chunks up to i (from i on when reverse).
  first = -1 if reverse else 0
  ends = ends.at[first].add(decays[first] * h0)
  _, carries = jax.lax.associative_scan(_combine, (decays, ends), reverse=reverse, axis=0)
  index = jax.lax.axis_index(axis_name)
  num_chunks = carries.shape[0]
  if reverse:
    carry_in = jnp.where(index == num_chunks - 1, h0,
                         carries[jnp.minimum(index + 1, num_chunks - 1)])
  else:
    carry_in = jnp.where(index == 0, h0, carries[jnp.maximum(index - 1, 0)])
  # Every device computes the same final state from the same gathered pairs.
  h_last = carries[0] if reverse else carries[-1]
  return h + decay * carry_in[:, None], h_last


def sequence_parallel_linear_scan(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array | None = None,
    *,
    mesh: Mesh,
    axis_name: str,
    batch_axis: str | None = None,
    reverse: bool = False,
    implementation: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """`minrnn.ops.linear_scan` with time sharded over the mesh axis `axis_name`.

  Args:
    a: `(batch, time, features)` decay coefficients, any float dtype; `time` must be divisible
      by the size of the `axis_name` axis.
    b: `(batch, time, features)` inputs, same shape as `a`.
    h0: optional `(batch, features)` initial state (zeros if None).
    mesh: the device mesh.
    axis_name: the mesh axis that time is split over, in contiguous chunks.
    batch_axis: optional mesh axis that the batch is split over at the same time (data
      parallelism); `batch` must be divisible by its size.
    reverse: run from the last step to the first.
    implementation: the `minrnn.ops.linear_scan` path that scans each chunk (None: the
      platform default, the Pallas kernel on GPU).

  Returns:
    `(h, h_last)` as `linear_scan` returns them: all states `(batch, time, features)` in the
    inputs' promoted dtype, sharded over time; the final state `(batch, features)` in float32.
  """
  _check_mesh(mesh, axis_name, batch_axis)
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.ndim != 3 or a.shape != b.shape:
    raise ValueError(
        "sequence_parallel_linear_scan: a and b must have the same shape (batch, time, "
        f"features), got {tuple(a.shape)} and {tuple(b.shape)}.")
  num_chunks = mesh.shape[axis_name]
  batch, num_steps, features = a.shape
  if num_steps % num_chunks:
    raise ValueError(
        f"sequence_parallel_linear_scan: the time axis ({num_steps} steps) must be divisible by "
        f"the {num_chunks} devices of mesh axis {axis_name!r}; pad the sequences (and pass "
        "seq_lengths to the cell) or choose a length that is a multiple of it.")
  if batch_axis is not None and batch % mesh.shape[batch_axis]:
    raise ValueError(
        f"sequence_parallel_linear_scan: the batch ({batch}) must be divisible by the "
        f"{mesh.shape[batch_axis]} devices of mesh axis {batch_axis!r}.")
  # Resolve outside shard_map so that a bad name fails here, with the dispatcher's message.
  implementation = resolve_implementation(implementation)
  out_dtype = jnp.result_type(a.dtype, b.dtype)
  if h0 is None:
    h0 = jnp.zeros((batch, features), jnp.float32)
  elif tuple(jnp.shape(h0)) != (batch, features):
    raise ValueError(
        f"sequence_parallel_linear_scan: h0 must have shape (batch, features) = "
        f"{(batch, features)}, got {tuple(jnp.shape(h0))}.")

  sequence_spec = P(batch_axis, axis_name, None)
  state_spec = P(batch_axis, None)
  local = functools.partial(_local_scan, axis_name=axis_name, reverse=reverse,
                            implementation=implementation)
  # check_vma=False: the Pallas chunk kernel declares its outputs without the per-device
  # ("varying") type that the check needs, and the final state is replicated by construction.
  h, h_last = _shard_map(
      local, mesh=mesh, in_specs=(sequence_spec, sequence_spec, state_spec),
      out_specs=(sequence_spec, state_spec), check_vma=False,
  )(a.astype(jnp.float32), b.astype(jnp.float32), h0.astype(jnp.float32))
  return h.astype(out_dtype), h_last


def register(
    mesh: Mesh,
    axis_name: str,
    *,
    batch_axis: str | None = None,
    implementation: str | None = None,
    name: str = DEFAULT_NAME,
) -> str:
  """Registers the sequence-parallel scan as the `minrnn.ops.linear_scan` path `name`.

  After `register(mesh, "sequence")`, any cell or model given `implementation=name` scans
  sequence-sharded. Registering the same name again replaces the earlier mesh.

  Args:
    mesh: the device mesh.
    axis_name: the mesh axis that time is split over.
    batch_axis: optional mesh axis that the batch is split over as well.
    implementation: the path that scans each chunk (None: the platform default). Must not be
      `name` itself.
    name: the path's name.

  Returns:
    `name`, to pass as `implementation=`.
  """
  if implementation == name:
    raise ValueError(
        f"The sequence-parallel path {name!r} cannot scan its chunks with itself; pass a "
        f"single-device path such as 'associative' or None as implementation.")
  _check_mesh(mesh, axis_name, batch_axis)
  inner = (None if implementation is None
           else resolve_implementation(implementation))

  def fn(a, b, h0, reverse):
    return sequence_parallel_linear_scan(a, b, h0, mesh=mesh, axis_name=axis_name,
                                         batch_axis=batch_axis, reverse=reverse,
                                         implementation=inner)

  register_implementation(
      name, fn, needs_positive=inner in LOG_SPACE_PATHS)
  return name
