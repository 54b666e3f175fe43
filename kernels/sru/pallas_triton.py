"""Pallas (Triton) forward and backward kernels of SRU's elementwise recurrence.

The recurrence is sequential in time but independent across (direction, batch, feature), so the
grid is `(directions, batch, hidden // block_features)` and each program walks time for
`block_features` contiguous columns of one batch row, holding `c` in registers. Both directions
run in one launch: the direction is a grid axis that picks which way time is walked.

Each loop iteration handles `time_chunk` steps. The loads do not depend on `c`, so with
`prefetch` (the default) an iteration issues the next chunk's loads before running its own
chunk's dependent arithmetic: memory latency hides behind a chunk of steps instead of stalling
each one (on an H100 at T=4096 this halved the forward time; see NOTES.md).

The forward kernel writes `h`, the final `c` and, when a backward pass will follow, every `c_t`.
The backward kernel walks time the other way, recomputes the gates from the saved `c_{t−1}`,
and writes the gradients of `u`, `x` and `c0`, plus per-batch-row partial sums of the gradients
of `v_f, v_r, b_f, b_r` that the caller reduces over the batch.

Two static flags change the output equation, as the official options do: `use_tanh` uses
`g(c) = tanh(c)` in place of `c`, and `has_skip_term=False` drops the highway term
(`h = r ⊙ g(c)`; no `x` and k = 3). Each combination compiles its own kernel.

Layouts (batch-major; the kernels never transpose):
  u `(batch, time, directions, k, hidden)`, x / h / c `(batch, time, directions, hidden)`,
  params `(directions, 4, hidden)` = `[v_f, v_r, b_f, b_r]`, c0 / c_last `(batch, directions,
  hidden)`, seq_lengths int32 `(batch,)`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu


@dataclasses.dataclass(frozen=True)
class KernelConfig:
  """Tuning knobs.

  block_features: columns per program (the largest power of two dividing hidden, up to this).
  time_chunk: steps whose loads are issued together.
  num_warps: Triton warps per program.
  prefetch: issue the next chunk's loads before the current chunk's arithmetic (register double
    buffering), so memory latency hides behind a whole chunk of dependent steps.
  """

  block_features: int = 32
  time_chunk: int = 16
  num_warps: int = 1
  prefetch: bool = True


def _block_features(hidden: int, limit: int) -> int:
  block = 1
  while block * 2 <= limit and hidden % (block * 2) == 0:
    block *= 2
  return block


def _sigmoid(z):
  # Spelled out: the Triton lowering has exp but no logistic primitive on every version.
  return 1.0 / (1.0 + jnp.exp(-z))


def _activation(c, use_tanh):
  return jnp.tanh(c) if use_tanh else c


def _output(g, r, x_prime):
  """`h = x' + (g − x') ⊙ r`, or `r ⊙ g` without the highway term (x_prime None)."""
  if x_prime is None:
    return g * r
  return x_prime + (g - x_prime) * r


def _load_highway(u_ref, x_ref, t, scale_x, has_skip_term):
  """`x'_t` in float32: `scale_x · x_t` (k = 3), `u3_t` (k = 4), or None without the term."""
  if not has_skip_term:
    return None
  if x_ref is not None:
    return scale_x * x_ref[t].astype(jnp.float32)
  return u_ref[t, 3].astype(jnp.float32)


def _time_loop(num_steps, chunk, prefetch, load, compute, carry):
  """Runs `compute(s, carry, load(s))` for s = 0..num_steps−1, loading `chunk` steps at once."""
  chunk = max(1, min(chunk, num_steps))
  num_chunks = num_steps // chunk

  def load_chunk(i):
    return [load(i * chunk + j) for j in range(chunk)]

  def run(start, rows, carry):
    for j, row in enumerate(rows):
      carry = compute(start + j, carry, row)
    return carry

  if prefetch:
    def body(i, state):
      carry, rows = state
      # Loaded values are first used in the next iteration, so their latency overlaps this
      # chunk's arithmetic. The last iteration reloads its own chunk rather than branch.
      upcoming = load_chunk(jnp.minimum(i + 1, num_chunks - 1))
      return run(i * chunk, rows, carry), upcoming

    carry, _ = jax.lax.fori_loop(0, num_chunks, body, (carry, load_chunk(0)))
  else:
    carry = jax.lax.fori_loop(
        0, num_chunks, lambda i, c: run(i * chunk, load_chunk(i), c), carry)
  return jax.lax.fori_loop(num_chunks * chunk, num_steps, lambda s, c: run(s, [load(s)], c),
                           carry)


def _walks_backward(directions: int, reverse: bool):
  """1 if this program's direction walks time from the end, else 0.

  An int (traced when bidirectional): the Triton lowering mishandles traced booleans captured
  by loops, and integer arithmetic selects the time index without a branch.
  """
  if directions == 1:
    return int(reverse)
  direction = pl.program_id(0)
  return 1 - direction if reverse else direction


def _time_index(s, num_steps, backward):
  return s + backward * (num_steps - 1 - 2 * s)


def _forward_kernel(*refs, num_steps, directions, reverse, scale_x, has_x, has_skip_term,
                    use_tanh, save_c, chunk, prefetch):
  refs = list(refs)
  lengths_ref, u_ref = refs.pop(0), refs.pop(0)
  x_ref = refs.pop(0) if has_x else None
  p_ref, c0_ref, h_ref = refs.pop(0), refs.pop(0), refs.pop(0)
  c_ref = refs.pop(0) if save_c else None
  c_last_ref = refs.pop(0)

  length = lengths_ref[pl.program_id(1)]
  backward = _walks_backward(directions, reverse)
  v_f, v_r = p_ref[0].astype(jnp.float32), p_ref[1].astype(jnp.float32)
  b_f, b_r = p_ref[2].astype(jnp.float32), p_ref[3].astype(jnp.float32)

  def load(s):
    t = _time_index(s, num_steps, backward)
    u0, u1, u2 = (u_ref[t, g].astype(jnp.float32) for g in range(3))
    return t, u0, u1, u2, _load_highway(u_ref, x_ref, t, scale_x, has_skip_term)

  def compute(s, c, row):
    del s
    t, u0, u1, u2, x_prime = row
    f = _sigmoid(u1 + v_f * c + b_f)
    r = _sigmoid(u2 + v_r * c + b_r)
    c_new = u0 + (c - u0) * f
    h = _output(_activation(c_new, use_tanh), r, x_prime)
    valid = t < length
    c_new = jnp.where(valid, c_new, c)
    h_ref[t] = jnp.where(valid, h, 0.0).astype(h_ref.dtype)
    if save_c:
      c_ref[t] = c_new
    return c_new

  c_last_ref[...] = _time_loop(num_steps, chunk, prefetch, load, compute, c0_ref[...])


def _backward_kernel(*refs, num_steps, directions, reverse, scale_x, has_x, has_skip_term,
                     use_tanh, chunk, prefetch):
  refs = list(refs)
  lengths_ref, u_ref = refs.pop(0), refs.pop(0)
  x_ref = refs.pop(0) if has_x else None
  p_ref, c0_ref, c_ref, dh_ref, dc_last_ref, du_ref = refs[:6]
  refs = refs[6:]
  dx_ref = refs.pop(0) if has_x else None
  dp_ref, dc0_ref = refs

  length = lengths_ref[pl.program_id(1)]
  # The backward pass walks time opposite to the forward pass of the same direction.
  forward_walks_backward = _walks_backward(directions, reverse)
  walks_backward = 1 - forward_walks_backward
  v_f, v_r = p_ref[0].astype(jnp.float32), p_ref[1].astype(jnp.float32)
  b_f, b_r = p_ref[2].astype(jnp.float32), p_ref[3].astype(jnp.float32)
  c0 = c0_ref[...]

  def load(s):
    t = _time_index(s, num_steps, walks_backward)
    # c_{t−1} in the forward walk's order: the neighbour it came from, or c0 at its start.
    prev = t - 1 + 2 * forward_walks_backward
    first = forward_walks_backward * (num_steps - 1)
    c_prev = jnp.where(t == first, c0, c_ref[jnp.clip(prev, 0, num_steps - 1)])
    u0, u1, u2 = (u_ref[t, g].astype(jnp.float32) for g in range(3))
    x_prime = _load_highway(u_ref, x_ref, t, scale_x, has_skip_term)
    return t, c_prev, u0, u1, u2, x_prime, dh_ref[t].astype(jnp.float32)

  def compute(s, carry, row):
    del s
    dc, dv_f, dv_r, db_f, db_r = carry
    t, c_prev, u0, u1, u2, x_prime, dh = row
    f = _sigmoid(u1 + v_f * c_prev + b_f)
    r = _sigmoid(u2 + v_r * c_prev + b_r)
    c = u0 + (c_prev - u0) * f
    g = _activation(c, use_tanh)
    valid = t < length
    dh = jnp.where(valid, dh, 0.0)
    dg = dh * r
    dc = dc + (dg * (1.0 - g * g) if use_tanh else dg)
    dz_r = dh * (g if x_prime is None else g - x_prime) * r * (1.0 - r)
    dz_f = jnp.where(valid, dc * (c_prev - u0) * f * (1.0 - f), 0.0)
    du0 = jnp.where(valid, dc * (1.0 - f), 0.0)
    du_ref[t, 0] = du0.astype(du_ref.dtype)
    du_ref[t, 1] = dz_f.astype(du_ref.dtype)
    du_ref[t, 2] = dz_r.astype(du_ref.dtype)
    if has_skip_term:
      dx_prime = dh * (1.0 - r)
      if has_x:
        dx_ref[t] = (scale_x * dx_prime).astype(dx_ref.dtype)
      else:
        du_ref[t, 3] = dx_prime.astype(du_ref.dtype)
    dc = jnp.where(valid, dc * f + dz_f * v_f + dz_r * v_r, dc)
    return (dc, dv_f + dz_f * c_prev, dv_r + dz_r * c_prev, db_f + dz_f, db_r + dz_r)

  zeros = jnp.zeros_like(c0)
  dc, dv_f, dv_r, db_f, db_r = _time_loop(
      num_steps, chunk, prefetch, load, compute, (dc_last_ref[...], zeros, zeros, zeros, zeros))
  dc0_ref[...] = dc
  dp_ref[0] = dv_f
  dp_ref[1] = dv_r
  dp_ref[2] = db_f
  dp_ref[3] = db_r


def _specs(u_shape, block, has_x):
  """Block specs of (lengths, u, x?, params, c0) and of the per-column outputs."""
  batch, num_steps, _, k, _ = u_shape
  lengths = pl.BlockSpec((batch,), lambda d, b, j: (0,))
  u = pl.BlockSpec((None, num_steps, None, k, block), lambda d, b, j: (b, 0, d, 0, j))
  seq = pl.BlockSpec((None, num_steps, None, block), lambda d, b, j: (b, 0, d, j))
  params = pl.BlockSpec((None, 4, block), lambda d, b, j: (d, 0, j))
  state = pl.BlockSpec((None, None, block), lambda d, b, j: (b, d, j))
  inputs = [lengths, u] + ([seq] if has_x else []) + [params, state]
  return inputs, u, seq, state


def _call_options(interpret: bool, config: KernelConfig):
  if interpret:
    return dict(interpret=True)
  return dict(compiler_params=plgpu.CompilerParams(num_warps=config.num_warps, num_stages=1))


@functools.partial(jax.jit, static_argnames=(
    "scale_x", "use_tanh", "has_skip_term", "reverse", "save_c", "interpret", "config"))
def sru_forward(u, x, params, c0, seq_lengths, *, scale_x, reverse, save_c, interpret,
                use_tanh=False, has_skip_term=True, config=KernelConfig()):
  """Forward kernel. Shapes as in the module docstring; `x` is None when k = 4 or without the
  highway term.

  Returns `(h, c_all, c_last)`: `h` in `u`'s dtype, `c_all` float32 `(batch, time, directions,
  hidden)` (None unless `save_c`), `c_last` float32 `(batch, directions, hidden)`.
  """
  batch, num_steps, directions, _, hidden = u.shape
  block = _block_features(hidden, config.block_features)
  has_x = x is not None
  in_specs, _, seq, state = _specs(u.shape, block, has_x)
  seq_shape = (batch, num_steps, directions, hidden)
  out_dtype = u.dtype if x is None else jnp.result_type(u.dtype, x.dtype)
  out_shape = [jax.ShapeDtypeStruct(seq_shape, out_dtype)]
  out_specs = [seq]
  if save_c:
    out_shape.append(jax.ShapeDtypeStruct(seq_shape, jnp.float32))
    out_specs.append(seq)
  out_shape.append(jax.ShapeDtypeStruct((batch, directions, hidden), jnp.float32))
  out_specs.append(state)
  kernel = functools.partial(
      _forward_kernel, num_steps=num_steps, directions=directions, reverse=reverse,
      scale_x=scale_x, has_x=has_x, has_skip_term=has_skip_term, use_tanh=use_tanh,
      save_c=save_c, chunk=config.time_chunk, prefetch=config.prefetch)
  outs = pl.pallas_call(
      kernel, out_shape=out_shape, grid=(directions, batch, hidden // block),
      in_specs=in_specs, out_specs=out_specs, name="sru_forward",
      **_call_options(interpret, config),
  )(seq_lengths, u, *([x] if has_x else []), params, c0)
  if save_c:
    return outs
  return outs[0], None, outs[1]


@functools.partial(jax.jit, static_argnames=(
    "scale_x", "use_tanh", "has_skip_term", "reverse", "interpret", "config"))
def sru_backward(u, x, params, c0, seq_lengths, c_all, dh, dc_last, *, scale_x, reverse,
                 interpret, use_tanh=False, has_skip_term=True, config=KernelConfig()):
  """Backward kernel: gradients of `(u, x, params, c0)` from those of `(h, c_last)`.

  `dparams` is summed over the batch here (a small XLA reduction of the kernel's per-row
  partial sums) and returned in float32.
  """
  batch, num_steps, directions, _, hidden = u.shape
  block = _block_features(hidden, config.block_features)
  has_x = x is not None
  in_specs, u_spec, seq, state = _specs(u.shape, block, has_x)
  in_specs = in_specs + [seq, seq, state]
  seq_shape = (batch, num_steps, directions, hidden)
  out_shape = [jax.ShapeDtypeStruct(u.shape, u.dtype)]
  out_specs = [u_spec]
  if has_x:
    out_shape.append(jax.ShapeDtypeStruct(seq_shape, x.dtype))
    out_specs.append(seq)
  out_shape += [jax.ShapeDtypeStruct((batch, directions, 4, hidden), jnp.float32),
                jax.ShapeDtypeStruct((batch, directions, hidden), jnp.float32)]
  out_specs += [pl.BlockSpec((None, None, 4, block), lambda d, b, j: (b, d, 0, j)), state]
  kernel = functools.partial(
      _backward_kernel, num_steps=num_steps, directions=directions, reverse=reverse,
      scale_x=scale_x, has_x=has_x, has_skip_term=has_skip_term, use_tanh=use_tanh,
      chunk=config.time_chunk, prefetch=config.prefetch)
  outs = pl.pallas_call(
      kernel, out_shape=out_shape, grid=(directions, batch, hidden // block),
      in_specs=in_specs, out_specs=out_specs, name="sru_backward",
      **_call_options(interpret, config),
  )(seq_lengths, u, *([x] if has_x else []), params, c0, c_all, dh, dc_last)
  du = outs[0]
  dx = outs[1] if has_x else None
  dparams, dc0 = outs[-2], outs[-1]
  return du, dx, dparams.sum(axis=0), dc0
