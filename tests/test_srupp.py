"""SRU++: attention causality, memory masking, α starting at 0, and segments with carried state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn.layers.srupp import SRUppAttention, SRUppLayer, SRUppProjection, attention_mask

B, T, D = 2, 6, 8


@pytest.fixture
def srupp_lm(tiny_lm):
  """An SRU++ language model as the SRU++ configs build it (layers stacked without norm or
  residual, linear head with a bias), vocabulary 30, width D."""
  def make(num_layers, seed, adaptive_cutoffs=None, softmax_chunk_size=None, **options):
    return tiny_lm("srupp", vocab_size=30, seed=seed, features=D, num_layers=num_layers,
                   conv_kernel_size=0, mlp_expansion=0, pre_norm=False, residual=False,
                   final_norm=False, tie_embeddings=False, head_bias=True,
                   adaptive_cutoffs=adaptive_cutoffs, softmax_chunk_size=softmax_chunk_size,
                   cell_kwargs={"proj_features": 4, **options})
  return make


def _layers(model):
  return [block.temporal for block in model.blocks]


@pytest.fixture(scope="module")
def attention():
  module = SRUppAttention(D, 12, 4, rngs=nnx.Rngs(0))
  module.alpha[...] = jnp.ones(())  # α = 0 would hide the attention term.
  return module


def _x(seed, shape=(B, T, D)):
  return jax.random.normal(jax.random.key(seed), shape)


def test_attention_is_causal(attention):
  x = _x(1)
  changed = x.at[:, 3].add(5.0)
  u, u_changed = attention(x), attention(changed)
  np.testing.assert_array_equal(u[:, :3], u_changed[:, :3])
  assert jnp.abs(u[:, 3:] - u_changed[:, 3:]).min() > 0


def test_masked_memory_is_invisible_and_visible_memory_is_read(attention):
  x, memory = _x(2), _x(3, (B, 5, D))
  hidden = jnp.zeros((B, 5), bool)
  np.testing.assert_allclose(attention(x, memory, hidden), attention(x), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(attention(x, 10 * memory, hidden), attention(x), rtol=1e-5,
                             atol=1e-6)
  # Row 0 sees slot 4 only: its output changes with that slot and not with the others.
  mask = jnp.zeros((B, 5), bool).at[0, 4].set(True)
  base = attention(x, memory, mask)
  assert jnp.abs(attention(x, memory.at[0, 4].add(1.0), mask)[0] - base[0]).min() > 0
  np.testing.assert_array_equal(attention(x, memory.at[0, :4].add(1.0), mask), base)
  np.testing.assert_array_equal(attention(x, memory.at[1].add(1.0), mask), base)


def test_alpha_starts_at_zero_so_a_new_layer_ignores_the_context():
  layer = SRUppLayer(D, proj_features=4, memory_length=T, rngs=nnx.Rngs(1))
  assert float(layer.transform.alpha[...]) == 0.0
  state = layer.initialize_state(B)._replace(memory=_x(4, (B, T, D)),
                                             memory_mask=jnp.ones((B, T), bool))
  h_memory, _ = layer(_x(5), state)
  h_fresh, _ = layer(_x(5))
  np.testing.assert_allclose(h_memory, h_fresh, rtol=1e-5, atol=1e-6)


def test_layer_state_keeps_the_last_inputs_as_memory():
  layer = SRUppLayer(D, proj_features=4, memory_length=4, rngs=nnx.Rngs(2))
  x = _x(6)
  h, state = layer(x)
  assert h.shape == (B, T, D) and state.c.shape == (B, D)
  assert state.c.dtype == jnp.float32
  np.testing.assert_array_equal(state.memory, x[:, -4:])
  assert state.memory_mask.all()
  _, short = layer(x[:, :2])
  np.testing.assert_array_equal(short.memory_mask[0], [False, False, True, True])


def test_two_segments_with_carried_state_equal_one_long_segment(srupp_lm):
  # With memory as long as a segment, the second segment's positions see exactly the context
  # they see in one long pass: the previous segment through the memory, and the recurrence.
  model = srupp_lm(2, 3, attention_every=1, memory_length=T)
  for layer in _layers(model):
    layer.transform.alpha[...] = jnp.ones(())
  tokens = jax.random.randint(jax.random.key(7), (B, 2 * T), 0, 30)
  long, long_state = model(tokens)
  first, state = model(tokens[:, :T])
  second, state = model(tokens[:, T:], state)
  np.testing.assert_allclose(jnp.concatenate([first, second], 1), long, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(state[0].temporal.c, long_state[0].temporal.c, rtol=1e-5,
                             atol=1e-6)
  # Without the carried state the second segment is scored differently.
  alone, _ = model(tokens[:, T:])
  assert jnp.abs(alone - second).max() > 1e-3


def test_attention_only_every_kth_layer_and_gradients_reach_alpha(srupp_lm):
  model = srupp_lm(4, 4, attention_every=2, memory_length=3)
  assert [layer.attention for layer in _layers(model)] == [False, True, False, True]
  assert [layer.memory_length for layer in _layers(model)] == [0, 3, 0, 3]
  tokens = jax.random.randint(jax.random.key(8), (B, T), 0, 30)

  def loss(model):
    return -jax.nn.log_softmax(model(tokens)[0])[..., 0].mean()

  grads = nnx.jit(nnx.grad(loss))(model)  # One compiled program, not many eager ops.
  assert float(jnp.abs(grads.blocks[1].temporal.transform.alpha[...])) > 0


def test_bad_arguments_are_explained(srupp_lm):
  with pytest.raises(ValueError, match="memory_length > 0 needs attention"):
    SRUppLayer(D, proj_features=4, attention=False, memory_length=2, rngs=nnx.Rngs(0))
  model = srupp_lm(1, 0)
  with pytest.raises(ValueError, match=r"integer ids of shape \(batch, time\)"):
    model(jnp.zeros((B, T, D)))


def test_highway_dropout_is_one_mask_per_sequence_and_off_in_evaluation():
  layer = SRUppLayer(D, proj_features=4, dropout=0.5, rngs=nnx.Rngs(5))
  x = _x(9)
  h_eval, _ = layer(x)
  h_train, _ = layer(x, rngs=nnx.Rngs(dropout=0))
  np.testing.assert_array_equal(h_eval, layer(x)[0])
  assert jnp.abs(h_train - h_eval).max() > 1e-3
  # Where the mask drops a feature of a row, h equals the highway input x at every step.
  dropped = jnp.all(jnp.isclose(h_train, x, atol=1e-6), axis=1)
  assert dropped.any() and not dropped.all()


def test_step_mode_matches_parallel_mode(srupp_lm):
  model = srupp_lm(2, 6, attention_every=2, memory_length=T)
  _layers(model)[1].transform.alpha[...] = jnp.ones(())
  tokens = jax.random.randint(jax.random.key(10), (B, T), 0, 30)
  parallel, _ = model(tokens)

  @nnx.jit
  def step(model, state, token):
    return model.step(state, token)

  state = model.initialize_state(B)
  for t in range(T):
    state, scores = step(model, state, tokens[:, t])
    np.testing.assert_allclose(scores, parallel[:, t], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cutoffs", [(8, 16), None])
def test_target_log_probs_match_the_full_scores(srupp_lm, cutoffs):
  model = srupp_lm(1, 7, memory_length=T, adaptive_cutoffs=cutoffs, softmax_chunk_size=5)
  tokens = jax.random.randint(jax.random.key(11), (B, T), 0, 30)
  scores, state = model(tokens)
  targets = jnp.argmax(scores, -1).at[:, ::2].set(tokens[:, ::2])  # Half of them top words.
  log_probs, top, target_state = model.target_log_probs(tokens, targets)
  want = jnp.take_along_axis(jax.nn.log_softmax(scores), targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(log_probs, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(top, jnp.argmax(scores, -1) == targets)
  assert top[:, 1::2].all()
  for got, expected in zip(jax.tree.leaves(target_state), jax.tree.leaves(state)):
    np.testing.assert_array_equal(got, expected)


def test_layer_norm_feeds_the_attention_normalised_inputs_and_keeps_raw_memory():
  # With r ≈ 1 (highway bias +30) the output is c, which depends on x only through U; with
  # layer_norm, U reads LayerNorm(x), so scaling x changes nothing. The memory stays raw.
  def layer(layer_norm):
    module = SRUppLayer(D, proj_features=4, memory_length=3, highway_bias=30.0,
                        layer_norm=layer_norm, rngs=nnx.Rngs(7))
    module.transform.alpha[...] = jnp.ones(())
    return module

  x = _x(8)
  normed = layer(True)
  h, state = normed(x)
  np.testing.assert_allclose(normed(3.0 * x)[0], h, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(state.memory, x[:, -3:])
  plain = layer(False)
  assert jnp.abs(plain(3.0 * x)[0] - plain(x)[0]).max() > 1e-2


# The official evaluation mask for mem_length = 3, from the docstring of `set_mask` in
# asappresearch/sru `experiments/srupp_experiments/train_enwik8.py` (commit 0fca653): rows are
# queries, columns keys, 1 = hidden. Segment 1 (no memory) uses rows 0-2 and columns 0-2;
# every later segment (memory = the previous 3 inputs) uses rows 3-5 and all 6 columns.
OFFICIAL_SAME_LENGTH_3 = np.array([
    [0, 1, 1, 1, 1, 1],
    [0, 0, 1, 1, 1, 1],
    [0, 0, 0, 1, 1, 1],
    [0, 0, 0, 0, 1, 1],
    [1, 0, 0, 0, 0, 1],
    [1, 1, 0, 0, 0, 0]]) == 0


def test_same_length_mask_is_the_official_one_and_counts_memory_plus_one_keys():
  full, empty = jnp.ones((1, 3), bool), jnp.zeros((1, 3), bool)
  later = attention_mask(1, 3, full, same_length=True)[0]
  np.testing.assert_array_equal(later, OFFICIAL_SAME_LENGTH_3[3:])
  assert later.sum(1).tolist() == [4, 4, 4]  # memory 3 + itself, for every query
  first = attention_mask(1, 3, empty, same_length=True)[0]
  np.testing.assert_array_equal(first[:, 3:], OFFICIAL_SAME_LENGTH_3[:3, :3])
  assert not first[:, :3].any() and first.sum(1).tolist() == [1, 2, 3]
  # The training mask (`set_mask` without same_length: `triu(ones, 1)`) shows the whole memory.
  assert attention_mask(1, 3, full)[0].sum(1).tolist() == [4, 5, 6]
  # A memory of 2 before a segment of 3: the window is 2 positions back, memory included.
  np.testing.assert_array_equal(attention_mask(1, 3, jnp.ones((1, 2), bool),
                                               same_length=True)[0],
                                [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1]])
  # Slots holding nothing yet stay hidden (slot 0 of row 0, in query 0's window only); rows
  # are independent.
  partly = attention_mask(2, 3, jnp.array([[False, True, True], [True] * 3]), same_length=True)
  assert partly.sum(2).tolist() == [[3, 4, 4], [4, 4, 4]]


def test_same_length_attention_reads_memory_only_within_the_window():
  module = SRUppAttention(D, 12, 4, same_length=True, rngs=nnx.Rngs(0))
  module.alpha[...] = jnp.ones(())
  x, memory = _x(2, (B, 3, D)), _x(3, (B, 3, D))
  base = module(x, memory)
  changed = lambda slot: jnp.abs(module(x, memory.at[:, slot].add(1.0)) - base).max(axis=(0, 2))
  # Memory slot j is within query t's window of 3 positions back when j >= t.
  assert (changed(0)[:1] > 0).all() and (changed(0)[1:] == 0).all()
  assert (changed(2) > 0).all()
  # The training mask lets every query read every slot.
  module.same_length = False
  assert (jnp.abs(module(x, memory.at[:, 0].add(1.0)) - module(x, memory)).max(axis=(0, 2))
          > 0).all()


def _layer_norm64(h, eps=1e-5):
  """PyTorch's `nn.LayerNorm` at initialisation (weight 1, bias 0, eps 1e-5), in float64."""
  mean = h.mean(-1, keepdims=True)
  return (h - mean) / np.sqrt(((h - mean) ** 2).mean(-1, keepdims=True) + eps)


@pytest.mark.parametrize("layer_norm", [True, False])
def test_attention_layer_norm_normalises_q_plus_alpha_attention(layer_norm):
  # W_q and W_o are the identity, so U is the normalised quantity itself. One row is scaled
  # down so that its variance (about 1e-6) is below the epsilon: 1e-5 against 1e-6 shows.
  module = SRUppAttention(4, 4, 4, layer_norm=layer_norm, rngs=nnx.Rngs(1))
  module.q.kernel[...] = jnp.eye(4)
  module.out.kernel[...] = jnp.eye(4)
  module.alpha[...] = jnp.asarray(0.7)
  x = np.asarray(_x(4, (2, 5, 4)), np.float64) * np.array([1.0, 1e-3])[:, None, None]
  q = x
  k, v = np.split(q @ np.asarray(module.kv.kernel[...], np.float64), 2, axis=-1)
  scores = np.einsum("btd,bsd->bts", q, k) / 2.0 + np.where(np.tri(5), 0.0, -np.inf)
  probs = np.exp(scores - scores.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  h = q + 0.7 * probs @ v
  want = _layer_norm64(h) if layer_norm else h
  np.testing.assert_allclose(module(jnp.asarray(x, jnp.float32)), want, rtol=2e-4, atol=1e-5)


def test_projection_layer_norm_normalises_w_q_x():
  module = SRUppProjection(4, 4, 4, rngs=nnx.Rngs(2))
  module.out.kernel[...] = jnp.eye(4)
  x = np.asarray(_x(5, (2, 5, 4)), np.float64) * np.array([1.0, 1e-3])[:, None, None]
  want = _layer_norm64(x @ np.asarray(module.q.kernel[...], np.float64))
  np.testing.assert_allclose(module(jnp.asarray(x, jnp.float32)), want, rtol=2e-4, atol=1e-5)


def test_the_published_models_layer_has_only_the_attention_layer_norm():
  layer = SRUppLayer(D, proj_features=4, memory_length=3, rngs=nnx.Rngs(3))
  assert layer.input_norm is None and layer.transform.norm is not None
  bare = SRUppLayer(D, proj_features=4, attention=False, attn_layer_norm=False,
                    rngs=nnx.Rngs(3))
  assert bare.input_norm is None and bare.transform.norm is None
  with pytest.raises(ValueError, match="same_length needs memory_length"):
    SRUppLayer(D, proj_features=4, same_length=True, rngs=nnx.Rngs(3))


def test_same_length_segments_score_like_one_pass_with_a_sliding_window(srupp_lm):
  # With the same-length mask every position sees the memory_length positions before it,
  # whether they lie in its segment or in the memory: three segments with the state carried
  # equal one pass over the whole text. The training mask lets a segment's later positions
  # see more than memory_length back, so there the two differ.
  def scores(same_length, segment):
    model = srupp_lm(2, 9, attention_every=1, memory_length=4, same_length=same_length)
    for layer in _layers(model):
      layer.transform.alpha[...] = jnp.ones(())
    tokens = jax.random.randint(jax.random.key(12), (B, 12), 0, 30)
    state, out = None, []
    for start in range(0, 12, segment):
      s, state = model(tokens[:, start:start + segment], state)
      out.append(s)
    return jnp.concatenate(out, 1)

  np.testing.assert_allclose(scores(True, 4), scores(True, 12), rtol=1e-4, atol=1e-5)
  assert jnp.abs(scores(False, 4) - scores(False, 12)).max() > 1e-3
