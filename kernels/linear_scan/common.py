"""What the linear-scan kernels share: the input contract, checked once with clear errors, and
the custom VJP that joins a forward kernel to its backward kernel."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

# The kernels load float32 or bfloat16 and accumulate in float32.
SUPPORTED_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


def check_inputs(a: jax.Array, b: jax.Array, h0: jax.Array | None) -> None:
  """Raises a ValueError or TypeError unless `a`, `b` are `(batch, time >= 1, features)` of one
  shape in a supported dtype and `h0` is None or `(batch, features)`."""
  for name, x in (("a", a), ("b", b)):
    if x.ndim != 3:
      raise ValueError(
          f"linear_scan: {name} must have shape (batch, time, features), got "
          f"{tuple(x.shape)}."
      )
    if x.dtype not in SUPPORTED_DTYPES:
      raise TypeError(
          f"linear_scan: {name} has dtype {x.dtype}; the Pallas kernel takes float32 or bfloat16 "
          "inputs (it accumulates in float32). Cast it, e.g. x.astype(jnp.float32)."
      )
  if a.shape != b.shape:
    raise ValueError(
        f"linear_scan: a and b must have the same shape, got {tuple(a.shape)} and "
        f"{tuple(b.shape)}."
    )
  if a.shape[1] == 0:
    raise ValueError("linear_scan: the time axis is empty; pass at least one step.")
  if h0 is not None and tuple(h0.shape) != (a.shape[0], a.shape[2]):
    raise ValueError(
        f"linear_scan: h0 must have shape (batch, features) = {(a.shape[0], a.shape[2])}, got "
        f"{tuple(h0.shape)}."
    )


def prepare_inputs(a, b, h0) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`a`, `b` checked and promoted to one dtype; `h0` float32 (zeros if None)."""
  a, b = jnp.asarray(a), jnp.asarray(b)
  check_inputs(a, b, h0)
  dtype = jnp.result_type(a.dtype, b.dtype)
  a, b = a.astype(dtype), b.astype(dtype)
  batch, _, features = a.shape
  h0 = (jnp.zeros((batch, features), jnp.float32) if h0 is None
        else jnp.asarray(h0).astype(jnp.float32))
  return a, b, h0


def with_vjp(forward: Callable[..., Any], backward: Callable[..., Any]) -> Callable[..., Any]:
  """`scan(a, b, h0, reverse, interpret, config, backward_config) -> (h, h_last)`, differentiable.

  `forward(a, b, h0, reverse, interpret, config)` returns `(h, h_last)`; `backward(a, h, dh, h0,
  dh_last, reverse, interpret, backward_config)` returns `(da, db, dh0)` from the saved `a`, `h`
  and `h0` (the reverse scan of the output gradient).
  """

  @functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
  def scan(a, b, h0, reverse, interpret, config, backward_config):
    del backward_config
    return forward(a, b, h0, reverse, interpret, config)

  def scan_fwd(a, b, h0, reverse, interpret, config, backward_config):
    del backward_config
    h, h_last = forward(a, b, h0, reverse, interpret, config)
    return (h, h_last), (a, h, h0)

  def scan_bwd(reverse, interpret, config, backward_config, residuals, cotangents):
    del config
    a, h, h0 = residuals
    dh, dh_last = cotangents
    return backward(a, h, dh.astype(h.dtype), h0, dh_last.astype(jnp.float32), reverse,
                    interpret, backward_config)

  scan.defvjp(scan_fwd, scan_bwd)
  return scan
