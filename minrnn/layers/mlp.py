"""The MLP of the residual block: gated (ours) or plain (the papers' official code)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.layers.init import FLAX, ParamInit


class MLP(nnx.Module):
  """`(..., features)` in and out, hidden width `expansion * features`.

  - gated: `down(gelu(x W_gate) * (x W_up))`, GELU in its tanh form;
  - plain: `down(gelu(up(x)))`, GELU in its exact (erf) form, as PyTorch's `nn.GELU()` in the
    official minRNN and Decision-Mamba blocks (`Linear -> GELU -> Linear`).

  Args:
    features: input and output width.
    expansion: hidden width as a multiple of `features`.
    gated: the gated form (two input projections) or the plain one.
    dtype, param_dtype: compute and parameter dtypes.
    init: the parameter scheme (`minrnn.layers.init`).
    rngs: parameter keys.
  """

  def __init__(self, features: int, expansion: int, *, gated: bool = True,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               init: ParamInit = FLAX, rngs: nnx.Rngs):
    hidden = expansion * features
    self.gated = gated
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.up = nnx.Linear(features, (2 if gated else 1) * hidden, **init.dense(features),
                         **common)
    self.down = nnx.Linear(hidden, features, **init.dense(hidden), **common)

  def __call__(self, x: jax.Array) -> jax.Array:
    if not self.gated:
      return self.down(jax.nn.gelu(self.up(x), approximate=False))
    gate, up = jnp.split(self.up(x), 2, axis=-1)
    return self.down(jax.nn.gelu(gate) * up)
