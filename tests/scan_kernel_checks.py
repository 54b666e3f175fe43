"""The checks both plain linear-scan kernels (Triton, Mosaic GPU) must pass: outputs, final
state and the gradients of `a`, `b`, `h0` against the float64 oracle and the `lax.scan`
reference."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oracle
from minrnn.kernels.linear_scan import reference

# float32 arithmetic on these lengths lands near 1e-7; bfloat16 inputs and outputs carry 8
# mantissa bits (relative rounding 2**-9 per element), so bf16 results are held to 1e-2.
TOL = {jnp.float32: 1e-5, jnp.bfloat16: 1e-2}

INTERPRET = [True, pytest.param(False, marks=pytest.mark.gpu, id="compiled")]


def rel(x, ref):
  x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
  assert np.all(np.isfinite(x)), "non-finite values in the kernel's result"
  return np.linalg.norm(x - ref) / np.linalg.norm(ref)


def inputs(shape, dtype, seed):
  """`(a, b, h0, dh, dh_last)` for a `(batch, time, features)` scan."""
  batch, _, features = shape
  ks = jax.random.split(jax.random.key(seed), 5)
  # Decays in (0.5, 1) keep the state O(1) over the whole sequence, so errors accumulate visibly.
  a = jax.random.uniform(ks[0], shape, minval=0.5, maxval=1.0).astype(dtype)
  b = jax.random.normal(ks[1], shape).astype(dtype)
  h0 = jax.random.normal(ks[2], (batch, features), jnp.float32)
  dh = jax.random.normal(ks[3], shape).astype(dtype)
  dh_last = jax.random.normal(ks[4], (batch, features), jnp.float32)
  return a, b, h0, dh, dh_last


@functools.lru_cache(maxsize=None)
def _vjp(scan, reverse, interpret, config, backward_config):
  """Jitted `(a, b, h0, dh, dh_last) -> ((h, h_last), (da, db, dh0))` of a kernel's scan."""

  @jax.jit
  def fn(a, b, h0, dh, dh_last):
    out, vjp = jax.vjp(
        lambda a, b, h0: scan(a, b, h0, reverse=reverse, interpret=interpret, config=config,
                              backward_config=backward_config),
        a, b, h0,
    )
    return out, vjp((dh, dh_last))

  return fn


@functools.lru_cache(maxsize=None)
def _reference_vjp(reverse):
  @jax.jit
  def fn(a, b, h0, dh, dh_last):
    out, vjp = jax.vjp(
        lambda a, b, h0: reference.linear_scan(a, b, h0, reverse=reverse), a, b, h0
    )
    return out, vjp((dh, dh_last))

  return fn


def check_case(scan, shape, dtype, reverse, interpret, config=None, backward_config=None,
               seed=0):
  """`scan(a, b, h0, *, reverse, interpret, config, backward_config)` on one case."""
  a, b, h0, dh, dh_last = inputs(shape, dtype, seed)
  (h, h_last), (da, db, dh0) = _vjp(scan, reverse, interpret, config, backward_config)(
      a, b, h0, dh, dh_last)
  assert h.dtype == dtype and h.shape == shape
  assert h_last.dtype == jnp.float32 and h_last.shape == h0.shape
  assert da.dtype == dtype and db.dtype == dtype and dh0.dtype == jnp.float32
  assert da.shape == shape and db.shape == shape and dh0.shape == h0.shape
  tol = TOL[dtype]
  names = ("h", "h_last", "da", "db", "dh0")
  got = (h, h_last, da, db, dh0)
  want = (*oracle.linear_scan(a, b, h0, reverse),
          *oracle.linear_scan_vjp(a, b, h0, dh, dh_last, reverse))
  for name, x, y in zip(names, got, want):
    assert rel(x, y) < tol, f"{name} differs from the float64 oracle"
  (h_ref, h_last_ref), grads_ref = _reference_vjp(reverse)(a, b, h0, dh, dh_last)
  for name, x, y in zip(names, got, (h_ref, h_last_ref, *grads_ref)):
    assert rel(x, y) < tol, f"{name} differs from the JAX reference"
