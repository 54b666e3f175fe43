"""The linear recurrence `h_t = a_t * h_{t-1} + b_t` with its time axis sharded over devices.

Each device holds a contiguous chunk of time. The scan runs in three stages inside `shard_map`:

1. every device scans its own chunk from a zero state with a single-device path of
   `minrnn.ops.linear_scan` (any linear-space path: the Pallas kernel on GPU), and takes the
   chunk's product of `a`;
2. the devices all-gather these `(product, final state)` pairs, one `(batch, features)` pair per
   chunk, and each one combines the pairs of the chunks before it (after it when `reverse`) with
   the initial state into its incoming carry;
3. every device corrects its chunk: `h_t += (prod_{s <= t in chunk} a_s) * carry_in`.

Each device sends `2 * batch * features` numbers, whatever the sequence length.
Gradients come from JAX's autodiff through `shard_map` and the collectives.

The path is selected with a `SequenceParallel` spec where an implementation name is expected,
so the mesh arrives as an argument:

    linear_scan(a, b, h0, implementation=SequenceParallel(mesh, "sequence"))
    MinGRU(..., implementation=SequenceParallel(mesh, "sequence", batch_axis="data"))

The training loop builds its model with such a spec when `config.mesh.sequence > 1`. Inside
`jax.jit`, inputs that are not yet sharded over time are resharded by XLA.

SRU is not linear in its state (its gates read `c_{t-1}`), so it cannot be split this way; it
shards over batch and features only.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P

@dataclasses.dataclass(frozen=True)
class SequenceParallel:
  """Selects the sequence-parallel scan (`implementation=SequenceParallel(...)`).

  Attributes:
    mesh: the device mesh.
    axis_name: the mesh axis that time is split over, in contiguous chunks.
    batch_axis: optional mesh axis that the batch is split over at the same time (data
      parallelism); the batch must be divisible by its size.
    inner: the single-device `minrnn.ops.linear_scan` path that scans each chunk (None: the
      platform default, the Pallas kernel on GPU).
  """

  mesh: Mesh
  axis_name: str = "sequence"
  batch_axis: str | None = None
  inner: str | None = None

  def __post_init__(self):
    for role, name in (("axis_name", self.axis_name), ("batch_axis", self.batch_axis)):
      if name is not None and name not in self.mesh.axis_names:
        raise ValueError(
            f"SequenceParallel: {role}={name!r} is not an axis of the mesh, whose axes are "
            f"{self.mesh.axis_names}. Build the mesh with that axis, e.g. "
            f"minrnn.training.distributed.make_mesh({{{name!r}: {self.mesh.devices.size}}}).")
    if self.batch_axis == self.axis_name:
      raise ValueError(
          f"SequenceParallel: batch_axis and axis_name are both {self.axis_name!r}; time and "
          "batch must be sharded over different mesh axes.")
    if isinstance(self.inner, SequenceParallel):
      raise ValueError("SequenceParallel cannot scan its chunks with itself; pass a "
                       "single-device path such as 'associative' or None as inner.")

def _combine(earlier, later):
  """Composes two affine maps `h -> a*h + b`, `earlier` applied first."""
  a1, b1 = earlier
  a2, b2 = later
  return a1 * a2, a2 * b1 + b2


def _local_scan(a, b, h0, *, chunk_scan, axis_name, reverse, implementation):
  """Runs on one device: a, b its `(batch, chunk, features)`; h0 the global `(batch, features)`."""
  # An explicit zero state derived from `a`, so that it is typed as varying over the devices
  # like the chunk it starts (a `lax.scan` carry must keep its type).
  h, h_end = chunk_scan(a, b, jnp.zeros_like(a[:, 0]), reverse=reverse,
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


# (a, b, h0 | None, reverse) -> (h, h_last) on float32 (batch, time, features) coefficients.
ScanFn = Callable[[jax.Array, jax.Array, jax.Array | None, bool], tuple[jax.Array, jax.Array]]


def scan_fn(spec: SequenceParallel, chunk_scan: Callable) -> ScanFn:
  """The sharded scan of `spec`, scanning each chunk with `chunk_scan` (`linear_scan`'s
  signature); the table entry `"sequence_parallel"` of `minrnn.ops.linear_scan` runs it."""

  def scan(a, b, h0, reverse):
    batch, num_steps, features = a.shape
    num_chunks = spec.mesh.shape[spec.axis_name]
    if num_steps % num_chunks:
      raise ValueError(
          f"sequence-parallel scan: the time axis ({num_steps} steps) must be divisible by the "
          f"{num_chunks} devices of mesh axis {spec.axis_name!r}; pad the sequences (and pass "
          "seq_lengths to the cell) or choose a length that is a multiple of it.")
    if spec.batch_axis is not None and batch % spec.mesh.shape[spec.batch_axis]:
      raise ValueError(
          f"sequence-parallel scan: the batch ({batch}) must be divisible by the "
          f"{spec.mesh.shape[spec.batch_axis]} devices of mesh axis {spec.batch_axis!r}.")
    if h0 is None:
      h0 = jnp.zeros((batch, features), jnp.float32)
    sequence_spec = P(spec.batch_axis, spec.axis_name, None)
    state_spec = P(spec.batch_axis, None)
    local = functools.partial(_local_scan, chunk_scan=chunk_scan, axis_name=spec.axis_name,
                              reverse=reverse, implementation=spec.inner)
    # check_vma=False: the Pallas chunk kernel declares its outputs without the per-device
    # ("varying") type that the check needs, and the final state is replicated by construction.
    return jax.shard_map(
        local, mesh=spec.mesh, in_specs=(sequence_spec, sequence_spec, state_spec),
        out_specs=(sequence_spec, state_spec), check_vma=False,
    )(a, b, h0)

  return scan
