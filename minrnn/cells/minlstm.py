"""minLSTM, from "Were RNNs All We Needed?" (Feng et al., 2024, arXiv 2410.01201).

    f_t = σ(Linear_f(x_t)),   i_t = σ(Linear_i(x_t)),   h̃_t = Linear_h(x_t)
    f'_t = f_t / (f_t + i_t),   i'_t = i_t / (f_t + i_t)          (length-independence scaling)
    h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ g(h̃_t)

With `normalize=True` (the default, as in the paper's main results) the gates are rescaled so
that `f' + i' = 1` and the state's scale does not grow with the sequence length. With
`normalize=False`, `h_t = f_t ⊙ h_{t−1} + i_t ⊙ g(h̃_t)`. Log-space form, with
`d = softplus(−k_f) − softplus(−k_i)`:

    log f' = −softplus(d),   log i' = −softplus(−d),   log b = log i' + log g(h̃).

The official code (`BorealisAI/minRNNs`, `models/minRNNs.py`) calls the normalised form
`use_coeff_norm` and ships it off by default; the paper's results use it, and so does this
default. Its `forget_bias_init_scale` (3 in its default config) adds a constant to the forget
gate's bias after PyTorch's initialisation: `forget_bias` here.
"""

import functools

import jax

from minrnn.cells.activations import g, log_g
from minrnn.cells.base import LinearRecurrentCell


def gate_coefficients(
    k_f: jax.Array, k_i: jax.Array, h_tilde: jax.Array, *, normalize: bool = True
) -> tuple[jax.Array, jax.Array]:
  """`(a, b) = (f', i' ⊙ g(h̃))` from float32 pre-activations of one shape.

  `f = σ(k_f)`, `i = σ(k_i)`; with `normalize`, `f' = f / (f + i)` and `i' = i / (f + i)`,
  otherwise `f' = f` and `i' = i`.
  """
  f, i = jax.nn.sigmoid(k_f), jax.nn.sigmoid(k_i)
  if normalize:
    f, i = f / (f + i), i / (f + i)
  return f, i * g(h_tilde)


class MinLSTM(LinearRecurrentCell):
  """minLSTM cell. Inputs `(..., in_features)`, states float32 `(..., hidden_features)`.

  Constructed as `MinLSTM(in_features, hidden_features, *, rngs, normalize=True, ...)` with the
  options of `LinearRecurrentCell` (`use_bias`, `dtype`, `param_dtype`, `kernel_init`,
  `bias_init`, `learn_initial_state`, `implementation`). One matmul gives the forget and input
  pre-activations and the candidate `h̃`.

  Args:
    normalize: divide both gates by `f + i` (the paper's length-independence scaling).
    forget_bias: added to the forget gate's bias `b_f` once initialised (the official
      `forget_bias_init_scale`): `f = σ(W_f x + b_f)` starts closer to 1, so the state starts
      by keeping more of its past. Needs `use_bias`.
  """

  num_projections = 3

  def __init__(self, in_features: int, hidden_features: int, *, normalize: bool = True,
               forget_bias: float = 0.0, **kwargs):
    self.normalize = normalize
    super().__init__(in_features, hidden_features, **kwargs)
    if forget_bias:
      if self.proj.bias is None:
        raise ValueError("forget_bias shifts the projection's bias; it needs use_bias=True.")
      # The forget pre-activation is the first of the three projections (`projections`).
      bias = self.proj.bias[...]
      self.proj.bias[...] = bias.at[:hidden_features].add(forget_bias)

  def gates(self):
    return functools.partial(gate_coefficients, normalize=self.normalize)

  def log_coefficients(self, x):
    k_f, k_i, h_tilde = self.projections(x)
    if self.normalize:
      d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
      log_f, log_i = -jax.nn.softplus(d), -jax.nn.softplus(-d)
    else:
      log_f, log_i = -jax.nn.softplus(-k_f), -jax.nn.softplus(-k_i)
    return log_f, log_i + log_g(h_tilde)
