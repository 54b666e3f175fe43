"""minLSTM, from "Were RNNs All We Needed?" (Feng et al., 2024, arXiv 2410.01201).

    f_t = σ(Linear_f(x_t)),   i_t = σ(Linear_i(x_t)),   h̃_t = Linear_h(x_t)
    f'_t = f_t / (f_t + i_t),   i'_t = i_t / (f_t + i_t)          (length-independence scaling)
    h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ g(h̃_t)

With `normalize=True` (the default, as in the paper's main results) the gates are rescaled so
that `f' + i' = 1` and the state's scale does not grow with the sequence length. With
`normalize=False`, `h_t = f_t ⊙ h_{t−1} + i_t ⊙ g(h̃_t)`. Log-space form, with
`d = softplus(−k_f) − softplus(−k_i)`:

    log f' = −softplus(d),   log i' = −softplus(−d),   log b = log i' + log g(h̃).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import initializers
from flax.typing import Dtype, Initializer

from minrnn.cells.activations import g, log_g
from minrnn.cells.base import LinearRecurrentCell


class MinLSTM(LinearRecurrentCell):
  """minLSTM cell. Inputs `(..., in_features)`, states float32 `(..., hidden_features)`.

  Args:
    in_features: input width.
    hidden_features: state (and output) width.
    normalize: divide both gates by `f + i` (the paper's length-independence scaling).
    use_bias: whether the projections have biases (the paper's do).
    dtype: compute dtype of the projections and of the outputs (None: from the inputs).
      Gates and states are float32 whatever it is.
    param_dtype: parameter dtype.
    kernel_init, bias_init: initializers of the joint `[f, i, h̃]` projection.
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
      normalize: bool = True,
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
    self.normalize = normalize
    self.dtype = dtype
    self.implementation = implementation
    # One matmul produces the forget and input pre-activations and the candidate h̃.
    self.proj = nnx.Linear(
        in_features, 3 * hidden_features, use_bias=use_bias, dtype=dtype,
        param_dtype=param_dtype, kernel_init=kernel_init, bias_init=bias_init, rngs=rngs)
    self._init_initial_state(learn_initial_state, param_dtype)

  def _preactivations(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    k_f, k_i, h_tilde = jnp.split(self.proj(x).astype(jnp.float32), 3, axis=-1)
    return k_f, k_i, h_tilde

  def coefficients(self, x):
    k_f, k_i, h_tilde = self._preactivations(x)
    f, i = jax.nn.sigmoid(k_f), jax.nn.sigmoid(k_i)
    if self.normalize:
      f, i = f / (f + i), i / (f + i)
    return f, i * g(h_tilde)

  def log_coefficients(self, x):
    k_f, k_i, h_tilde = self._preactivations(x)
    if self.normalize:
      d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
      log_f, log_i = -jax.nn.softplus(d), -jax.nn.softplus(-d)
    else:
      log_f, log_i = -jax.nn.softplus(-k_f), -jax.nn.softplus(-k_i)
    return log_f, log_i + log_g(h_tilde)
