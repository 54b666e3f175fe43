"""Blocks and the language model: causality, step mode == parallel mode, the temporal-layer
registry, block compositions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn import cells
from minrnn.layers import CausalConv, Recurrent, registry

VOCAB, BATCH, TIME = 11, 2, 9


def _tokens(seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(0, VOCAB, (BATCH, TIME)), jnp.int32)


def test_causal_conv_never_looks_ahead():
  conv = CausalConv(4, 3, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (BATCH, TIME, 4))
  window = conv.initial_window(BATCH, jnp.float32)
  y, _ = conv(x, window)
  y_changed, _ = conv(x.at[:, 5].add(10.0), window)
  np.testing.assert_array_equal(y[:, :5], y_changed[:, :5])
  assert not np.allclose(y[:, 5], y_changed[:, 5])


def test_causal_conv_window_stops_at_each_rows_end():
  conv = CausalConv(2, 3, rngs=nnx.Rngs(0))
  x = jnp.arange(BATCH * 5 * 2, dtype=jnp.float32).reshape(BATCH, 5, 2)
  window = conv.initial_window(BATCH, jnp.float32)
  _, padded_window = conv(x, window, jnp.array([5, 3]))
  np.testing.assert_array_equal(padded_window[0], x[0, 3:5])
  np.testing.assert_array_equal(padded_window[1], x[1, 1:3])


def test_model_is_causal(tiny_lm):
  model = tiny_lm("mingru")
  tokens = _tokens()
  logits, _ = model(tokens)
  changed, _ = model(tokens.at[:, 6].set((tokens[:, 6] + 1) % VOCAB))
  np.testing.assert_array_equal(logits[:, :6], changed[:, :6])
  assert not np.allclose(logits[:, 6:], changed[:, 6:])


@pytest.mark.parametrize("cell", registry.names())
def test_step_decoding_reproduces_parallel_logits(tiny_lm, cell):
  options = {"transformer": {"num_heads": 2}, "srupp": {"proj_features": 4}}.get(cell, {})
  model = tiny_lm(cell, cell_kwargs=options)
  tokens = _tokens()
  logits, final_state = model(tokens)
  state = model.initialize_state(BATCH)
  stepped = []
  for t in range(TIME):
    state, step_logits = model.step(state, tokens[:, t])
    stepped.append(step_logits)
  np.testing.assert_allclose(jnp.stack(stepped, 1), logits, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(final_state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_parallel_prompt_then_steps_continue_the_sequence(tiny_lm):
  model = tiny_lm("mingru", conv_kernel_size=4)
  tokens = _tokens(1)
  logits, _ = model(tokens)
  prefix_logits, state = model(tokens[:, :5])
  np.testing.assert_allclose(prefix_logits, logits[:, :5], rtol=1e-5, atol=1e-5)
  for t in range(5, TIME):
    state, step_logits = model.step(state, tokens[:, t])
    np.testing.assert_allclose(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)
  rest_logits, _ = model(tokens[:, 5:], model(tokens[:, :5])[1])
  np.testing.assert_allclose(rest_logits, logits[:, 5:], rtol=1e-5, atol=1e-5)


def test_dropout_only_with_rngs_and_untied_head(tiny_lm):
  model = tiny_lm("mingru", dropout=0.5, tie_embeddings=False, num_layers=1)
  tokens = _tokens()
  a, _ = model(tokens)
  b, _ = model(tokens)
  np.testing.assert_array_equal(a, b)
  c, _ = model(tokens, rngs=nnx.Rngs(dropout=0))
  assert not np.allclose(a, c)
  assert model.head is not None and a.dtype == jnp.float32


def test_bfloat16_compute_keeps_float32_logits_and_carries(tiny_lm):
  model = tiny_lm("mingru", dtype="bfloat16", num_layers=1)
  logits, state = model(_tokens())
  assert logits.dtype == jnp.float32
  assert state[0].temporal.dtype == jnp.float32 and state[0].conv.dtype == jnp.bfloat16
  assert np.all(np.isfinite(logits))


def test_registry_names_every_layer_and_accepts_new_cells(tiny_lm):
  assert {"mingru", "minlstm", "gru", "lstm", "sru", "mamba", "transformer",
          "srupp"} <= set(registry.names())
  with pytest.raises(ValueError, match="Unknown temporal layer 'mingru2'.*srupp.*register_cell"):
    tiny_lm("mingru2")
  with pytest.raises(ValueError, match="already registered"):
    registry.register_cell("mingru", cells.MinGRU)
  with pytest.raises(ValueError, match="option it does not take.*normalise"):
    tiny_lm("minlstm", cell_kwargs={"normalise": False})
  registry.register_cell(
      "test_minlstm_unnormalized",
      lambda i, h, **kw: cells.MinLSTM(i, h, normalize=False, **kw), overwrite=True)
  model = tiny_lm("test_minlstm_unnormalized", num_layers=1)
  assert isinstance(model.blocks[0].temporal.cell, cells.MinLSTM)
  assert model(_tokens())[0].shape == (BATCH, TIME, VOCAB)


def test_expansion_widens_the_cell_and_projects_back(tiny_lm):
  model = tiny_lm("mingru", expansion=3, num_layers=1)
  layer = model.blocks[0].temporal
  assert isinstance(layer, Recurrent) and layer.cell.hidden_features == 48
  assert layer.to_out.kernel.shape == (48, 16)
  assert model(_tokens())[0].shape == (BATCH, TIME, VOCAB)
  with pytest.raises(ValueError, match="expansion applies to recurrent cells"):
    tiny_lm("transformer", expansion=2, cell_kwargs={"num_heads": 2})


def test_block_compositions_of_the_papers(tiny_lm):
  bare = tiny_lm("mingru", conv_kernel_size=0, mlp_expansion=0, num_layers=1).blocks[0]
  assert bare.conv is None and bare.mlp is None and bare.mlp_norm is None
  srupp = tiny_lm("srupp", pre_norm=False, residual=False, conv_kernel_size=0,
                  mlp_expansion=0, cell_kwargs={"proj_features": 4}).blocks[0]
  assert srupp.temporal_norm is None and not srupp.residual


def test_conv_on_its_own_residual_branch_as_the_official_model(tiny_lm):
  # BorealisAI/minRNNs models/model.py: x = conv(x) + x; x = rnn(norm(x)) + x;
  # x = ff(ff_norm(x)) + x.
  model = tiny_lm("minlstm", conv_residual=True, expansion=2, num_layers=1)
  block = model.blocks[0]
  x = jax.random.normal(jax.random.key(3), (BATCH, TIME, 16))
  y, _ = block(x)
  c, _ = block.conv(x, block.conv.initial_window(BATCH, jnp.float32))
  x1 = x + c
  x2 = x1 + block.temporal(block.temporal_norm(x1))[0]
  want = x2 + block.mlp(block.mlp_norm(x2))
  np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
  # The default keeps the conv inside the temporal branch, after the norm.
  default = tiny_lm("minlstm", expansion=2, num_layers=1).blocks[0]
  inner, _ = default.conv(default.temporal_norm(x), default.conv.initial_window(BATCH,
                                                                                jnp.float32))
  h = x + default.temporal(inner)[0]
  np.testing.assert_allclose(default(x)[0], h + default.mlp(default.mlp_norm(h)),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("conv_residual", [False, True])
def test_step_mode_matches_parallel_and_the_state_stays_constant_size(tiny_lm, conv_residual):
  model = tiny_lm("mingru", conv_residual=conv_residual, expansion=3, conv_kernel_size=4)
  tokens = _tokens(2)
  logits, final = model(tokens)
  state = model.initialize_state(BATCH)
  shapes = jax.tree.map(jnp.shape, state)
  for t in range(TIME):
    state, step_logits = model.step(state, tokens[:, t])
    np.testing.assert_allclose(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)
    assert jax.tree.map(jnp.shape, state) == shapes
  # The minRNN layer's state is the cell's: features * expansion wide, whatever the length.
  assert [s.temporal.shape for s in final] == [(BATCH, 16 * 3)] * 2


def test_plain_mlp_is_linear_gelu_linear():
  from minrnn.layers import MLP
  mlp = MLP(4, 3, gated=False, rngs=nnx.Rngs(0))
  x = np.random.default_rng(0).normal(size=(2, 4))
  w1, b1 = np.asarray(mlp.up.kernel[...], np.float64), np.asarray(mlp.up.bias[...], np.float64)
  w2, b2 = (np.asarray(mlp.down.kernel[...], np.float64),
            np.asarray(mlp.down.bias[...], np.float64))
  h = x @ w1 + b1
  # PyTorch's nn.GELU(): the exact form, x * Phi(x).
  gelu = h * 0.5 * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
  assert w1.shape == (4, 12)
  np.testing.assert_allclose(mlp(jnp.asarray(x, jnp.float32)), gelu @ w2 + b2, rtol=1e-5,
                             atol=1e-6)


def test_bad_tokens_give_clear_errors(tiny_lm):
  model = tiny_lm(num_layers=1)
  with pytest.raises(ValueError, match=r"integer ids of shape \(batch, time\)"):
    model(jnp.zeros((BATCH, TIME, 3), jnp.int32))
  with pytest.raises(ValueError, match=r"\(batch,\)"):
    model.step(model.initialize_state(BATCH), jnp.zeros((BATCH, 1), jnp.int32))
