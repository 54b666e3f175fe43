"""minGRU, from "Were RNNs All We Needed?" (Feng et al., 2024, arXiv 2410.01201).

    z_t = σ(Linear_z(x_t))
    h̃_t = Linear_h(x_t)
    h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ g(h̃_t)

The gates depend on `x_t` only, so this is the linear recurrence `h_t = a_t ⊙ h_{t−1} + b_t` with
`a = 1 − z` and `b = z ⊙ g(h̃)`, computed over a whole sequence with a parallel scan. `g` keeps
states positive, which the paper's log-space form needs:

    log a = −softplus(k),   log b = −softplus(−k) + log g(h̃),   k = Linear_z(x).
"""

import jax

from minrnn.cells.activations import g, log_g
from minrnn.cells.base import LinearRecurrentCell


def gate_coefficients(k: jax.Array, h_tilde: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`(a, b) = (1 − σ(k), σ(k) ⊙ g(h̃))` from float32 pre-activations of one shape."""
  z = jax.nn.sigmoid(k)
  return 1.0 - z, z * g(h_tilde)


class MinGRU(LinearRecurrentCell):
  """minGRU cell. Inputs `(..., in_features)`, states float32 `(..., hidden_features)`.

  Constructed as `MinGRU(in_features, hidden_features, *, rngs, ...)` with the options of
  `LinearRecurrentCell` (`use_bias`, `dtype`, `param_dtype`, `kernel_init`, `bias_init`,
  `learn_initial_state`, `implementation`). One matmul gives the gate pre-activation `k` and
  the candidate `h̃`; the paper's projections have biases, so `use_bias` defaults to True.
  """

  num_projections = 2

  def gates(self):
    return gate_coefficients

  def log_coefficients(self, x):
    k, h_tilde = self.projections(x)
    return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_g(h_tilde)
