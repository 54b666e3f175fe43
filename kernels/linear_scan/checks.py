"""The input contract every linear-scan kernel shares, checked once with clear errors."""

from __future__ import annotations

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
