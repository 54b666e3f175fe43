"""Adaptive input and tied adaptive softmax: normalised log-probabilities, clusters, tying."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn.layers.adaptive import AdaptiveEmbedding, cluster_bounds


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


@pytest.mark.parametrize("chunk_size", [4, 1024])  # 4 does not divide the 15 positions.
def test_target_log_probs_equal_the_full_log_probs_with_their_gradients(adaptive, chunk_size):
  module = nnx.clone(adaptive)
  module.chunk_size = chunk_size
  h = 3.0 * jax.random.normal(jax.random.key(3), (3, 5, 16))
  # Targets in every cluster, at their edges too; the weight-0 positions hold the padding id 0.
  targets = jnp.array([[0, 9, 10, 19, 20], [34, 35, 49, 3, 27], [12, 40, 0, 0, 0]])
  weights = jnp.ones((3, 5)).at[2, 2:].set(0.0)

  def full(module, h):
    log_probs = module.log_probs(h)
    return jnp.take_along_axis(log_probs, targets[..., None], -1)[..., 0], log_probs.max(-1)

  def chunked(module, h):
    return module.target_log_probs(h, targets, with_max=True)

  def loss(score, module, h):
    return -jnp.sum(score(module, h)[0] * weights)

  @nnx.jit
  def values_and_grads(module, h):
    return ((full(module, h), chunked(module, h)),
            (nnx.grad(loss, argnums=(1, 2))(full, module, h),
             nnx.grad(loss, argnums=(1, 2))(chunked, module, h)))

  ((want, want_max), (got, got_max)), (want_grads, got_grads) = values_and_grads(module, h)
  assert got.shape == (3, 5) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(got_max, want_max, rtol=1e-6, atol=1e-6)
  # The most likely word's score is exactly the maximum (the accuracy metric relies on it).
  best, best_max = module.target_log_probs(h, jnp.argmax(module.log_probs(h), -1), with_max=True)
  np.testing.assert_array_equal(best, best_max)
  assert jnp.all(got <= got_max)
  flat_want, flat_got = jax.tree.leaves(want_grads), jax.tree.leaves(got_grads)
  assert len(flat_got) == len(flat_want) == 1 + 4 + 4 + 4 + 2  # h, then every parameter.
  for w, g in zip(flat_want, flat_got):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
  assert jnp.abs(got_grads[1][2, 2:]).max() == 0  # Weight-0 positions get no gradient.


def test_target_log_probs_memory_does_not_grow_with_positions_times_vocab():
  # Compiled only (no run). The property: the backward pass of the chunked loss holds a few
  # chunk x vocab floats, not positions x vocab, asserted with margins no honest change of XLA's
  # planner crosses (as tests/test_models.py does for the full softmax): a small fraction of the
  # full log-probabilities, and no growth of vocab floats per position.
  vocab, positions = 5000, 1024
  module = AdaptiveEmbedding(vocab, 16, cutoffs=(500, 1000, 2000), chunk_size=64,
                             rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(module)

  def temp_bytes(positions):
    h = jax.ShapeDtypeStruct((positions, 16), jnp.float32)
    targets = jax.ShapeDtypeStruct((positions,), jnp.int32)
    loss = lambda p, h, t: -nnx.merge(graphdef, p).target_log_probs(h, t).sum()
    fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return fn.lower(params, h, targets).compile().memory_analysis().temp_size_in_bytes

  full_scores = positions * vocab * 4
  one, two = temp_bytes(positions), temp_bytes(2 * positions)
  assert one < full_scores / 4
  assert two - one < full_scores / 16


def test_bad_target_log_probs_arguments_are_explained(adaptive):
  with pytest.raises(ValueError, match=r"targets of its leading shape"):
    adaptive.target_log_probs(jnp.zeros((2, 3, 16)), jnp.zeros((2, 4), jnp.int32))
  with pytest.raises(ValueError, match="integer ids"):
    adaptive.target_log_probs(jnp.zeros((2, 16)), jnp.zeros((2,)))
  with pytest.raises(ValueError, match="chunk_size must be a positive"):
    AdaptiveEmbedding(50, 16, cutoffs=(10,), chunk_size=0, rngs=nnx.Rngs(0))


def test_embedding_dropout_drops_cluster_vectors_before_their_projection():
  # The official AdaptiveEmbedding (asappresearch/sru 0fca653, embedding.py): emb_i =
  # F.linear(dropout(embedding_i[token]), proj_i), so each output is (mask * e / (1 - p)) P_i
  # with a 0/1 mask over the cluster-width vector e. A full-rank P_i gives the masked vector
  # back.
  module = AdaptiveEmbedding(50, 16, cutoffs=(10, 20, 35), div_val=2, dropout=0.5,
                             rngs=nnx.Rngs(0))
  for token, cluster, start in ((3, 0, 0), (12, 1, 10)):
    e = np.asarray(module.embeddings[cluster][...][token - start], np.float64)
    projection = np.asarray(module.projections[cluster][...], np.float64)
    np.testing.assert_allclose(module.embed(jnp.array([token]))[0], e @ projection, rtol=1e-5)
    out = np.asarray(module.embed(jnp.full((400,), token), rngs=nnx.Rngs(dropout=1)),
                     np.float64)
    vectors = out @ np.linalg.pinv(projection)  # (400, width): each entry 0 or 2 e.
    kept = np.isclose(vectors, 2 * e, rtol=1e-3, atol=1e-4)
    dropped = np.isclose(vectors, 0.0, atol=1e-4)
    assert (kept | dropped).all()
    assert 0.4 < dropped.mean() < 0.6


def test_embedding_dropout_drops_each_clusters_projected_state_in_the_softmax():
  # The official AdaptiveLogSoftmax._compute_logit: logit = F.linear(dropout(h P_i), W_i, b_i)
  # for the head and each tail cluster, one mask each. With widths 2 (head) and 1 (tail), a
  # tail word's log p can take only 4 x 2 values; written out here in float64.
  module = AdaptiveEmbedding(30, 6, cutoffs=(10, 20), div_val=2, embed_features=2, dropout=0.5,
                             rngs=nnx.Rngs(1))
  module.cluster_logits[...] = jax.random.normal(jax.random.key(2), (2, 2))
  h = np.asarray(jax.random.normal(jax.random.key(3), (6,)), np.float64)
  p = [np.asarray(x[...], np.float64) for x in module.projections]
  e = [np.asarray(x[...], np.float64) for x in module.embeddings]
  b = [np.asarray(x[...], np.float64) for x in module.biases]
  head_w = np.concatenate([e[0], np.asarray(module.cluster_logits[...], np.float64)])
  head_b = np.concatenate([b[0], np.asarray(module.cluster_bias[...], np.float64)])
  log_softmax = lambda z: z - np.log(np.exp(z - z.max()).sum()) - z.max()
  target = 15  # word 5 of tail cluster 1, whose entry in the head is 10 + 0
  values = []
  for m0 in ((0, 0), (0, 1), (1, 0), (1, 1)):
    for m1 in ((0,), (1,)):
      head = log_softmax((np.array(m0) * 2 * (h @ p[0].T)) @ head_w.T + head_b)
      tail = log_softmax((np.array(m1) * 2 * (h @ p[1].T)) @ e[1].T + b[1])
      values.append(head[10] + tail[5])
  targets = jnp.full((300,), target)
  got = module.target_log_probs(jnp.broadcast_to(jnp.asarray(h, jnp.float32), (300, 6)),
                                targets, rngs=nnx.Rngs(dropout=4))
  distance = np.abs(np.asarray(got, np.float64)[:, None] - np.array(values)[None])  # (300, 8)
  assert distance.min(1).max() < 1e-4
  assert len(set(distance.argmin(1).tolist())) >= 6  # The masks vary from position to position.
  # Without rngs: no dropout, the full log-probabilities.
  np.testing.assert_allclose(module.target_log_probs(jnp.asarray(h, jnp.float32)[None],
                                                     targets[:1]),
                             module.log_probs(jnp.asarray(h, jnp.float32))[None, target],
                             rtol=1e-6)


def test_embedding_dropout_needs_the_adaptive_embedding(tiny_lm):
  with pytest.raises(ValueError, match="emb_dropout=0.1 applies inside the adaptive"):
    tiny_lm("mingru", emb_dropout=0.1)


def test_the_language_model_trains_with_the_embedding_dropout(tiny_lm):
  tokens = jax.random.randint(jax.random.key(5), (2, 6), 0, 30)
  make = lambda rate: tiny_lm("mingru", vocab_size=30, adaptive_cutoffs=(8, 16),
                              softmax_chunk_size=8, emb_dropout=rate)
  for rate, differs in ((0.5, True), (0.0, False)):
    model = make(rate)
    train = model.target_log_probs(tokens, tokens, rngs=nnx.Rngs(dropout=0))[0]
    evaluate = model.target_log_probs(tokens, tokens)[0]
    assert bool(jnp.any(train != evaluate)) == differs
