"""minGRU, from "Were RNNs All We Needed?" (Feng et al., 2024, arXiv 2410.01201).

    z_t = σ(Linear_z(x_t))
    h̃_t = Linear_h(x_t)
    h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ g(h̃_t)

The gates depend on `x_t` only, so this is the linear recurrence `h_t = a_t ⊙ h_{t−1} + b_t` with
`a = 1 − z` and `b = z ⊙ g(h̃)`, computed over a whole sequence with a parallel scan. `g` keeps
states positive, which the paper's log-space form needs:

    log a = −softplus(k),   log b = −softplus(−k) + log g(h̃),   k = Linear_z(x).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import initializers
from flax.typing import Dtype, Initializer

from minrnn.cells.activations import g, log_g
from minrnn.cells.base import LinearRecurrentCell


class MinGRU(LinearRecurrentCell):
  """minGRU cell. Inputs `(..., in_features)`, states float32 `(..., hidden_features)`.

  Args:
    in_features: input width.
    hidden_features: state (and output) width.
    use_bias: whether the gate and candidate projections have biases (the paper's do).
    dtype: compute dtype of the projections and of the outputs (None: from the inputs).
      Gates and states are float32 whatever it is.
    param_dtype: parameter dtype.
    kernel_init, bias_init: initializers of the joint `[z, h̃]` projection.
    learn_initial_state: learn a positive initial state (`softplus` of a parameter) instead of
      starting from zeros.
    implementation: default `minrnn.ops.linear_scan` path of `scan` (None: platform default).
    rngs: parameter initialisation keys.
  """

  def __init__(
      self,
      in_features: int,
      hidden_features: int,
      *,
      use_bias: bool = True,
      dtype: Dtype | None = None,
      param_dtype: Dtype = jnp.float32,
      kernel_init: Initializer = initializers.lecun_normal(),
      bias_init: Initializer = initializers.zeros_init(),
      learn_initial_state: bool = False,
      implementation: str | None = None,
      rngs: nnx.Rngs,
  ):
    self.in_features = in_features
    self.hidden_features = hidden_features
    self.dtype = dtype
    self.implementation = implementation
    # One matmul produces both the gate pre-activation k and the candidate h̃.
    self.proj = nnx.Linear(
        in_features, 2 * hidden_features, use_bias=use_bias, dtype=dtype,
        param_dtype=param_dtype, kernel_init=kernel_init, bias_init=bias_init, rngs=rngs)
    self._init_initial_state(learn_initial_state, param_dtype)

  def _preactivations(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    k, h_tilde = jnp.split(self.proj(x).astype(jnp.float32), 2, axis=-1)
    return k, h_tilde

  def coefficients(self, x):
    k, h_tilde = self._preactivations(x)
    z = jax.nn.sigmoid(k)
    return 1.0 - z, z * g(h_tilde)

  def log_coefficients(self, x):
    k, h_tilde = self._preactivations(x)
    return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_g(h_tilde)
