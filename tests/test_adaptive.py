"""Adaptive input and tied adaptive softmax: normalised log-probabilities, clusters, tying."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn.adaptive import AdaptiveEmbedding, cluster_bounds


@pytest.fixture(scope="module")
def adaptive():
  module = AdaptiveEmbedding(50, 16, cutoffs=(10, 20, 35), div_val=2, rngs=nnx.Rngs(0))
  # Non-zero cluster logits and biases, so normalisation is tested away from the init.
  module.cluster_logits[...] = jax.random.normal(jax.random.key(1), (3, 16))
  module.biases[2][...] = jnp.linspace(-1.0, 1.0, 15)
  return module


def test_log_probs_sum_to_one(adaptive):
  h = 3.0 * jax.random.normal(jax.random.key(2), (3, 5, 16))
  log_probs = adaptive.log_probs(h)
  assert log_probs.shape == (3, 5, 50) and log_probs.dtype == jnp.float32
  np.testing.assert_allclose(jnp.exp(jax.nn.logsumexp(log_probs, -1)), 1.0, atol=1e-5)
  assert jnp.all(log_probs <= 0)


def test_cluster_widths_and_embedding_lookup(adaptive):
  assert [e.shape for e in adaptive.embeddings] == [(10, 16), (10, 8), (15, 4), (15, 2)]
  tokens = jnp.array([[0, 9, 10, 19, 20, 34, 35, 49]])
  x = adaptive.embed(tokens)
  assert x.shape == (1, 8, 16)
  # Token 36 is row 1 of the last cluster, projected by that cluster's matrix.
  expected = adaptive.embeddings[3][...][1] @ adaptive.projections[3][...]
  np.testing.assert_allclose(adaptive.embed(jnp.array([36]))[0], expected, rtol=1e-6)


def test_softmax_is_tied_to_the_input_embeddings(adaptive):
  def loss(module):
    return -module.log_probs(jnp.ones((2, 16)))[:, 40].sum()

  grads = nnx.jit(nnx.grad(loss))(adaptive)  # One compiled program, not many eager ops.
  # The tail word's score flows into the shared embeddings and projection of its cluster.
  assert jnp.abs(grads.embeddings[3][...][5]).sum() > 0
  assert jnp.abs(grads.projections[3][...]).sum() > 0


def test_bad_cutoffs_are_explained():
  assert cluster_bounds(100, [10, 50]) == (0, 10, 50, 100)
  with pytest.raises(ValueError, match="cutoffs must be increasing"):
    cluster_bounds(100, [10, 200])
  with pytest.raises(ValueError, match="19997"):
    cluster_bounds(100, [50, 10])
