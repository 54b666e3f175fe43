"""The positive activation `g` of "Were RNNs All We Needed?" and its logarithm.

`g(x) = x + 0.5` for `x >= 0` and `sigmoid(x)` for `x < 0`: continuous, increasing and positive,
so minGRU and minLSTM states stay positive and the recurrence can run in log space.
"""

import jax
import jax.numpy as jnp


def g(x: jax.Array) -> jax.Array:
  """`g(x)`, elementwise; any shape and float dtype."""
  return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_g(x: jax.Array) -> jax.Array:
  """`log g(x)` computed without forming `g(x)`, so it stays accurate for very negative `x`."""
  return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))
