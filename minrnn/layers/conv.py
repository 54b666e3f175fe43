"""A depthwise causal 1-D convolution with a constant-size state: the last inputs it saw."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.layers.init import FLAX, ParamInit

# Flax's LeCun-normal over the taps: the fan-in of a depthwise filter is its number of taps.
_LECUN_TAPS = nnx.initializers.lecun_normal(in_axis=0, out_axis=1)


class CausalConv(nnx.Module):
  """`y_t = bias + sum_j kernel[j] * x_{t - k + 1 + j}`, each feature with its own `k` taps.

  The window of the last `kernel_size - 1` inputs is the state that step mode carries (zeros
  before the first token).

  Args:
    features: width of x and y.
    kernel_size: taps `k` (>= 1); 1 has no window.
    dtype: compute dtype (None: the inputs').
    param_dtype: parameter dtype.
    init: the parameter scheme (`minrnn.layers.init`), with fan-in `kernel_size`. Flax's
      default: LeCun-normal taps and a zero bias.
    rngs: parameter keys.
  """

  def __init__(self, features: int, kernel_size: int, *, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, init: ParamInit = FLAX, rngs: nnx.Rngs):
    if kernel_size < 1:
      raise ValueError(f"kernel_size must be >= 1, got {kernel_size}.")
    self.features = features
    self.kernel_size = kernel_size
    self.dtype = dtype
    inits = init.dense(kernel_size)
    kernel_init = inits.get("kernel_init", _LECUN_TAPS)
    self.kernel = nnx.Param(kernel_init(rngs.params(), (kernel_size, features), param_dtype))
    # A zero bias draws no key, so the default keeps every later layer's keys.
    bias_init = inits.get("bias_init")
    self.bias = nnx.Param(jnp.zeros((features,), param_dtype) if bias_init is None
                          else bias_init(rngs.params(), (features,), param_dtype))

  def initial_window(self, batch_size: int, dtype: Dtype) -> jax.Array:
    """Zeros `(batch_size, kernel_size - 1, features)`: nothing before the first token."""
    return jnp.zeros((batch_size, self.kernel_size - 1, self.features), dtype)

  def _taps(self, padded: jax.Array, num_steps: int) -> jax.Array:
    # The same sum, in the same order, serves both modes so they agree to the last bit.
    dtype = self.dtype or padded.dtype
    kernel = self.kernel[...].astype(dtype)
    y = self.bias[...].astype(dtype)
    for j in range(self.kernel_size):
      y = y + kernel[j] * padded[:, j:j + num_steps].astype(dtype)
    return y

  def __call__(self, x: jax.Array, window: jax.Array,
               seq_lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """x: `(batch, time, features)`; window: the previous `kernel_size - 1` inputs.

    Returns `(y, window)`: outputs like x, and the window after the last step (after each
    row's last valid step with `seq_lengths` int `(batch,)`).
    """
    padded = jnp.concatenate([window.astype(x.dtype), x], axis=1)
    width = self.kernel_size - 1
    if seq_lengths is None:
      new_window = padded[:, padded.shape[1] - width:]
    else:
      # The `width` inputs before row b's end sit at padded[b, len_b : len_b + width].
      index = jnp.asarray(seq_lengths)[:, None] + jnp.arange(width)[None, :]
      new_window = jnp.take_along_axis(padded, index[..., None], axis=1)
    return self._taps(padded, x.shape[1]), new_window

  def step(self, window: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x: `(batch, features)`. Returns `(window, y)`."""
    y, window = self(x[:, None], window)
    return window, y[:, 0]
