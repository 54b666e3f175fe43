"""The skeleton shared by the Pallas linear-scan kernels: tiling, masked loads, the time loop.

Every kernel in this folder runs a grid of `(batch, cdiv(features, block_d))` programs; each owns
one batch row and `block_d` features and walks the whole time axis with its state in float32
registers, loading `chunk` time steps per loop iteration (see `config.BlockConfig`). The pieces
here are that walk without the arithmetic: the kernels supply what to load and compute per step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu


def feature_mask(block_d: int, features: int) -> jax.Array | None:
  """Lanes of this program that hold real features; None when `block_d` divides `features`."""
  if features % block_d == 0:
    return None
  return pl.program_id(1) * block_d + jnp.arange(block_d) < features


def load(ref, mask) -> jax.Array:
  """`ref`'s `(block_d,)` values in float32; masked lanes read 0."""
  if mask is None:
    return ref[...].astype(jnp.float32)
  return plgpu.load(ref, mask=mask, other=0.0).astype(jnp.float32)


def store(ref, value, mask) -> None:
  # Cast first: a store must match the ref's dtype.
  value = value.astype(ref.dtype)
  if mask is None:
    ref[...] = value
  else:
    plgpu.store(ref, value, mask=mask)


def index(t) -> jax.Array:
  # A traced index even for static steps: masked loads in interpret mode reject Python ints.
  return jnp.asarray(t, jnp.int32)


def pipelined(num_steps: int, chunk: int, load_chunk, compute, carry):
  """Runs `num_steps` steps, `chunk` at a time, loading each chunk one iteration ahead.

  `load_chunk(first, count)` issues the loads of steps `first .. first + count - 1` and returns
  them; `compute(first, count, loaded, carry)` runs the dependent chain over them. The loads of
  chunk `c + 1` are issued before the chain of chunk `c`, so memory traffic continues while the
  chain runs. The `num_steps % chunk` remaining steps run last, unpipelined.
  """
  num_chunks, tail = divmod(num_steps, chunk)
  if num_chunks:

    def body(c, state):
      carry, loaded = state
      ahead = load_chunk((c + 1) * chunk, chunk)
      return compute(c * chunk, chunk, loaded, carry), ahead

    carry, loaded = jax.lax.fori_loop(0, num_chunks - 1, body, (carry, load_chunk(0, chunk)))
    carry = compute((num_chunks - 1) * chunk, chunk, loaded, carry)
  if tail:
    first = num_chunks * chunk
    carry = compute(first, tail, load_chunk(first, tail), carry)
  return carry


def specs(time: int, block_d: int) -> tuple[pl.BlockSpec, pl.BlockSpec]:
  """Block specs of a `(batch, time, features)` sequence and a `(batch, features)` state."""
  sequence = pl.BlockSpec((None, time, block_d), lambda i, j: (i, 0, j))
  state = pl.BlockSpec((None, block_d), lambda i, j: (i, j))
  return sequence, state


def call(kernel, name, config, interpret, batch, features, in_specs, out_specs, out_shape):
  """`pl.pallas_call` of `kernel` over the `(batch, cdiv(features, block_d))` grid."""
  return pl.pallas_call(
      kernel,
      out_shape=out_shape,
      grid=(batch, pl.cdiv(features, config.block_d)),
      in_specs=in_specs,
      out_specs=out_specs,
      interpret=interpret,
      compiler_params=plgpu.CompilerParams(
          num_warps=config.num_warps, num_stages=config.num_stages
      ),
      name=name,
  )
