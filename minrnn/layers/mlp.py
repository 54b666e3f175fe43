"""The gated MLP of the residual block."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype


class GatedMLP(nnx.Module):
  """`Linear(gelu(x W_gate) * (x W_up))`, hidden width `expansion * features`; `(..., features)`
  in and out."""

  def __init__(self, features: int, expansion: int, *, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    hidden = expansion * features
    self.up = nnx.Linear(features, 2 * hidden, dtype=dtype, param_dtype=param_dtype,
                         rngs=rngs)
    self.down = nnx.Linear(hidden, features, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    gate, up = jnp.split(self.up(x), 2, axis=-1)
    return self.down(jax.nn.gelu(gate) * up)
