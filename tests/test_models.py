"""Target-only scores of the full-softmax language models: in chunks of positions they equal
the full logits' log-probabilities, top-1 and gradients, without the (positions, vocab) tensor."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from minrnn.ops import chunked_softmax

VOCAB, BATCH, TIME = 13, 2, 9

MODELS = {
    "tied": dict(cell="mingru"),
    "untied": dict(cell="mingru", tie_embeddings=False),
    "untied_bias_no_norm": dict(cell="mingru", tie_embeddings=False, head_bias=True,
                                final_norm=False),
    "transformer": dict(cell="transformer", conv_kernel_size=0, cell_kwargs={"num_heads": 2}),
}


def _model(tiny_lm, name, chunk):
  settings = {"features": 8, "num_layers": 1, "conv_kernel_size": 2, **MODELS[name]}
  return tiny_lm(vocab_size=VOCAB, softmax_chunk_size=chunk, **settings)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_chunked_target_scores_equal_the_full_logits(tiny_lm, name):
  # 4 positions a chunk: 18 positions leave a padded last chunk.
  chunked_model, full_model = _model(tiny_lm, name, 4), _model(tiny_lm, name, None)
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(0, VOCAB, (BATCH, TIME)), jnp.int32)
  targets = jnp.asarray(rng.integers(0, VOCAB, (BATCH, TIME)), jnp.int32)
  weights = jnp.ones((BATCH, TIME)).at[1, 5:].set(0.0)

  def loss(model, targets):
    log_probs, top, _ = model.target_log_probs(tokens, targets)
    return -jnp.sum(log_probs * weights), (log_probs, top)

  @nnx.jit
  def scores_and_grads(full_model, chunked_model, targets):
    grad = nnx.grad(loss, has_aux=True)
    logits, _ = full_model(tokens)
    return logits, grad(full_model, targets), grad(chunked_model, targets)

  logits, (want_grads, (want, want_top)), (got_grads, (got, got_top)) = scores_and_grads(
      full_model, chunked_model, targets)
  # Without a chunk size: the training loop's cross-entropy on the full logits, bit for bit.
  np.testing.assert_array_equal(
      want, -optax.softmax_cross_entropy_with_integer_labels(logits, targets))
  np.testing.assert_array_equal(want_top, jnp.argmax(logits, -1) == targets)
  assert got.shape == got_top.shape == (BATCH, TIME)
  assert got.dtype == jnp.float32 and got_top.dtype == jnp.bool_
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(got_top, want_top)
  flat_want, flat_got = jax.tree.leaves(want_grads), jax.tree.leaves(got_grads)
  assert len(flat_got) == len(flat_want) > 0
  for w, g in zip(flat_want, flat_got):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
  # The most likely tokens are top (and, with random targets above, some were not).
  *_, (_, (_, best_top)) = scores_and_grads(full_model, chunked_model,
                                            jnp.argmax(logits, -1).astype(jnp.int32))
  assert jnp.all(best_top) and not jnp.all(got_top)


def test_weight_zero_positions_get_no_gradient_whatever_their_target():
  head = nnx.Linear(4, VOCAB, rngs=nnx.Rngs(0))
  h = jax.random.normal(jax.random.key(1), (3, 5, 4))
  # The weight-0 positions hold ids outside the vocabulary (any padding id).
  targets = jnp.asarray(np.random.default_rng(2).integers(0, VOCAB, (3, 5)), jnp.int32)
  targets = targets.at[2, 1:].set(VOCAB + 3)
  weights = jnp.ones((3, 5)).at[2, 1:].set(0.0)

  def loss(h, chunk_size):
    log_probs, _ = chunked_softmax.scored_targets(h, targets, head, chunk_size)
    return -jnp.sum(jnp.where(weights > 0, log_probs, 0.0)), log_probs

  value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
  (_, log_probs), grad = value_and_grad(h, 4)
  (_, full_log_probs), full_grad = value_and_grad(h, None)
  assert np.all(np.isfinite(log_probs))
  np.testing.assert_allclose(log_probs[weights > 0], full_log_probs[weights > 0], rtol=1e-6)
  np.testing.assert_allclose(grad, full_grad, rtol=1e-5, atol=1e-7)
  assert jnp.abs(grad[2, 1:]).max() == 0 and jnp.abs(grad[2, 0]).max() > 0


def test_chunked_memory_does_not_grow_with_positions_times_vocab():
  # Compiled only (no run). The property: the backward pass of the chunked loss holds a few
  # chunk x vocab floats, not positions x vocab. Asserted with margins no honest change of XLA's
  # planner crosses (the unchunked loss's own figure is XLA's business and is not asserted):
  # a small fraction of the full score matrix, and no growth of vocab floats per position.
  vocab, positions, chunk = 5000, 1024, 64
  graphdef, params = nnx.split(nnx.Linear(16, vocab, use_bias=False, rngs=nnx.Rngs(0)))

  def temp_bytes(positions):
    def loss(params, h, targets):
      head = nnx.merge(graphdef, params)
      return -chunked_softmax.scored_targets(h, targets, head, chunk)[0].sum()

    h = jax.ShapeDtypeStruct((positions, 16), jnp.float32)
    targets = jax.ShapeDtypeStruct((positions,), jnp.int32)
    fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return fn.lower(params, h, targets).compile().memory_analysis().temp_size_in_bytes

  full_scores = positions * vocab * 4
  one, two = temp_bytes(positions), temp_bytes(2 * positions)
  assert one < full_scores / 4
  # 1,024 more positions: their hidden states and per-position scores (tens of KB), never
  # another (positions, vocab) matrix (20 MB).
  assert two - one < full_scores / 16


def test_bad_softmax_arguments_are_explained(tiny_lm):
  with pytest.raises(ValueError, match="softmax_chunk_size must be a positive"):
    _model(tiny_lm, "tied", 0)
  with pytest.raises(ValueError, match="softmax_chunk_size must be a positive"):
    _model(tiny_lm, "transformer", -1)
  with pytest.raises(ValueError, match="adaptive softmax scores targets in chunks"):
    tiny_lm(vocab_size=40, adaptive_cutoffs=(8, 16), softmax_chunk_size=None)
  head = lambda h: h
  for chunk_size in (None, 4):
    with pytest.raises(ValueError, match="targets of its leading shape"):
      chunked_softmax.scored_targets(jnp.zeros((2, 3, 4)), jnp.zeros((2, 4), jnp.int32), head,
                                     chunk_size)
    with pytest.raises(ValueError, match="integer ids"):
      chunked_softmax.scored_targets(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3)), head, chunk_size)
