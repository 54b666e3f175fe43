"""SRUCell and the SRU stack: oracle, step == sequence, continuation, padding, directions,
options, dropout keys from the caller, and a training run with SRU dropout that resumes exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ml_collections import config_dict

import oracle
from minrnn import train as train_lib
from minrnn.cells.sru import SRU, SRUCell
from minrnn.training.metrics import read_metrics, series
from minrnn.ops import flip_sequences

B, T, IN = 2, 6, 6


@pytest.fixture(autouse=True)
def full_precision_matmuls():
  # GPUs multiply float32 in TF32 by default; the float64 oracle needs full precision.
  with jax.default_matmul_precision("highest"):
    yield


def inputs(seed=0, shape=(B, T, IN)):
  return jax.random.normal(jax.random.key(seed), shape)


def layer_norm(x, norm):
  x = np.asarray(x, np.float64)
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  return ((x - mean) / np.sqrt(var + norm.epsilon) * np.asarray(norm.scale[...])
          + np.asarray(norm.bias[...]))


def cell_oracle(cell, x, carry, lengths, reverse=False):
  """The cell's float64 computation: layer norm, projection(s), the recurrence oracle, and the
  layer norm after it with `normalize_after`."""
  x = np.asarray(x, np.float64)
  pre_norm = cell.layer_norm is not None and not cell.normalize_after
  x_hat = layer_norm(x, cell.layer_norm) if pre_norm else x
  if cell.weight_proj is not None:
    x_hat = x_hat @ np.asarray(cell.weight_proj[...], np.float64)
  batch, steps, _ = x.shape
  d, k, hidden = cell.directions, cell.num_matrices, cell.hidden_features
  u = (x_hat @ np.asarray(cell.kernel[...], np.float64)).reshape(batch, steps, d, k, hidden)
  x_seq = x.reshape(batch, steps, d, hidden) if k == 3 and cell.has_skip_term else None
  h, c = oracle.sru(u, x_seq, cell.weight_c[...], cell.bias[...],
                    np.asarray(carry).reshape(batch, d, hidden), lengths, cell.scale_x, reverse,
                    use_tanh=cell.use_tanh, has_skip_term=cell.has_skip_term)
  h = h.reshape(batch, steps, d * hidden)
  if cell.normalize_after:
    valid = np.arange(steps)[None, :, None] < np.asarray(lengths)[:, None, None]
    h = np.where(valid, layer_norm(h, cell.layer_norm), 0.0)
  return h, c.reshape(batch, d * hidden)


@pytest.mark.parametrize("hidden,kwargs", [
    (6, dict(highway_bias=-1.0)),                                  # k = 3, rescaled x
    (4, dict(bidirectional=True, layer_norm=True, rescale=False)),  # k = 4, LN, 2 directions
    # No highway term (k = 3 whatever the widths), tanh, factored projection.
    (5, dict(has_skip_term=False, use_tanh=True, n_proj=3)),
    # k = 4, layer norm after the layer, tanh, factored projection, 2 directions.
    (4, dict(bidirectional=True, layer_norm=True, normalize_after=True, use_tanh=True,
             n_proj=5, highway_bias=-1.0)),
])
def test_scan_matches_float64_oracle(hidden, kwargs):
  cell = SRUCell(IN, hidden, rngs=nnx.Rngs(0), **kwargs)
  x = inputs(1)
  carry = 0.5 * inputs(2, (B, cell.out_features))
  lengths = np.array([T, 4])
  carry_out, y = cell.scan(x, carry, seq_lengths=jnp.asarray(lengths),
                           implementation="sequential")
  y_ref, c_ref = cell_oracle(cell, x, carry, lengths)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(carry_out, c_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hidden,kwargs", [
    (6, {}),
    (3, dict(use_tanh=True, layer_norm=True, normalize_after=True, n_proj=2)),
    (4, dict(has_skip_term=False, dropout=0.5, rnn_dropout=0.5)),  # No dropout in either path.
])
def test_step_equals_scan(hidden, kwargs):
  cell = SRUCell(IN, hidden, highway_bias=-2.0, rngs=nnx.Rngs(1), **kwargs)
  x = inputs(3)
  carry0 = inputs(4, (B, hidden))
  carry, y = cell.scan(x, carry0, implementation="sequential")
  step = jax.jit(lambda c, x_t: cell(c, x_t))
  c, ys = carry0, []
  for t in range(T):
    c, y_t = step(c, x[:, t])
    ys.append(y_t)
  np.testing.assert_allclose(jnp.stack(ys, 1), y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(c, carry, rtol=1e-5, atol=1e-6)


def test_flax_rnn_wrapper_runs_the_step():
  cell = SRUCell(IN, 4, rngs=nnx.Rngs(2))
  x = inputs(5)
  y = nnx.RNN(cell)(x)
  np.testing.assert_allclose(y, cell.scan(x, implementation="sequential")[1], rtol=1e-5,
                             atol=1e-6)


def test_continuation_equals_one_pass():
  cell = SRUCell(IN, 4, bidirectional=False, rngs=nnx.Rngs(3))
  x = inputs(6)
  carry, y = cell.scan(x, implementation="sequential")
  c1, y1 = cell.scan(x[:, :2], implementation="sequential")
  c2, y2 = cell.scan(x[:, 2:], c1, implementation="sequential")
  np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), y, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(c2, carry, rtol=1e-6, atol=1e-6)


def test_padding_stops_the_carry_and_zeroes_outputs():
  cell = SRUCell(IN, 4, rngs=nnx.Rngs(4))
  x = inputs(7)
  lengths = jnp.array([T, 3])
  carry, y = cell.scan(x, seq_lengths=lengths, implementation="sequential")
  assert not np.any(np.asarray(y[1, 3:]))
  c_short, y_short = cell.scan(x[1:, :3], implementation="sequential")
  np.testing.assert_allclose(carry[1:], c_short, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(y[1:, :3], y_short, rtol=1e-6, atol=1e-6)


def test_reverse_runs_over_the_valid_part():
  cell = SRUCell(IN, 4, rngs=nnx.Rngs(5))
  x = inputs(8)
  lengths = jnp.array([4, T])
  carry, y = cell.scan(x, seq_lengths=lengths, reverse=True, implementation="sequential")
  c_flip, y_flip = cell.scan(flip_sequences(x, lengths), seq_lengths=lengths,
                             implementation="sequential")
  np.testing.assert_allclose(y, flip_sequences(y_flip, lengths), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(carry, c_flip, rtol=1e-6, atol=1e-6)


def test_bidirectional_halves_are_forward_and_reverse_cells():
  bi = SRUCell(IN, 4, bidirectional=True, rngs=nnx.Rngs(6))
  x = inputs(9)
  lengths = jnp.array([T, 5])
  carry, y = bi.scan(x, seq_lengths=lengths, implementation="sequential")
  for d, reverse in ((0, False), (1, True)):
    uni = SRUCell(IN, 4, rngs=nnx.Rngs(0))
    uni.kernel[...] = bi.kernel[...].reshape(IN, 2, -1)[:, d]
    uni.weight_c[...] = bi.weight_c[...][d:d + 1]
    uni.bias[...] = bi.bias[...][d:d + 1]
    c_d, y_d = uni.scan(x, seq_lengths=lengths, reverse=reverse, implementation="sequential")
    np.testing.assert_allclose(y[..., 4 * d:4 * (d + 1)], y_d, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(carry[:, 4 * d:4 * (d + 1)], c_d, rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="no single-step form"):
    bi(jnp.zeros((B, 8)), x[:, 0])


@pytest.mark.parametrize("kwargs", [
    # Layer 0 projects its highway input (k = 4), layer 1 rescales it (k = 3).
    dict(layer_norm=True, rescale=True),
    # tanh, no highway term, layer norm after each layer, layer 0's projection factored.
    dict(use_tanh=True, has_skip_term=False, layer_norm=True, normalize_after=True,
         projection_size=3),
])
def test_stack_pallas_and_sequential_agree_with_gradients(kwargs):
  # The kernel tests cover two directions; one keeps interpret mode quick here.
  model = SRU(IN, 4, num_layers=2, rngs=nnx.Rngs(7), **kwargs)
  x = inputs(10, (B, 3, IN))
  c0 = 0.3 * inputs(11, (2, B, 4))
  lengths = jnp.array([3, 2])
  graphdef, state, rest = nnx.split(model, nnx.Param, ...)

  def loss(state, x, c0, implementation):
    h, c = nnx.merge(graphdef, state, rest)(x, c0, lengths, implementation=implementation)
    return jnp.sum(h * jnp.cos(h)) + jnp.sum(c ** 2), (h, c)

  grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True), static_argnums=3)
  g_seq, (h_seq, c_seq) = grad(state, x, c0, "sequential")
  g_pal, (h_pal, c_pal) = grad(state, x, c0, "pallas")
  assert h_seq.shape == (B, 3, 4) and c_seq.shape == (2, B, 4)
  np.testing.assert_allclose(h_pal, h_seq, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(c_pal, c_seq, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g_pal), jax.tree.leaves(g_seq)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # The stack feeds each layer's output to the next and returns each layer's final state.
  layer0 = model.layers[0].scan(x, c0[0], seq_lengths=lengths, implementation="sequential")
  np.testing.assert_allclose(c_seq[0], layer0[0], rtol=1e-6, atol=1e-6)


def _same_params(cell_or_model, other):
  """`other` with the parameters of `cell_or_model` (the kernel init depends on the rates)."""
  nnx.update(other, nnx.state(cell_or_model, nnx.Param))
  return other


def test_dropout_is_one_mask_per_sequence_only_with_rngs():
  rate = 0.5
  cell = SRUCell(IN, 6, dropout=rate, rngs=nnx.Rngs(8))
  no_dropout = _same_params(cell, SRUCell(IN, 6, rngs=nnx.Rngs(0)))
  x = inputs(12)
  scan = lambda c, key=None: c.scan(x, rngs=None if key is None else nnx.Rngs(dropout=key),
                                    implementation="sequential")[1]
  y_off = scan(cell)
  np.testing.assert_array_equal(y_off, scan(no_dropout))
  np.testing.assert_array_equal(scan(no_dropout, 0), y_off)  # Rate 0 ignores keys.
  y_train = scan(cell, 0)
  np.testing.assert_array_equal(scan(cell, 0), y_train)
  assert not np.allclose(scan(cell, 1), y_train)
  x_prime = cell.scale_x * x
  ratio = np.asarray((y_train - x_prime) / (y_off - x_prime))
  np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), atol=1e-3)  # Same over time.
  assert set(np.round(np.unique(ratio), 3)) == {0.0, round(1 / (1 - rate), 3)}
  # Without the highway term the mask multiplies h itself.
  bare = SRUCell(IN, 6, dropout=rate, has_skip_term=False, rngs=nnx.Rngs(8))
  ratio = np.asarray(scan(bare, 0) / scan(bare))
  assert set(np.round(np.unique(ratio), 3)) == {0.0, round(1 / (1 - rate), 3)}


def test_rnn_dropout_masks_the_input_once_per_sequence_only_with_rngs():
  rate = 0.5
  cell = SRUCell(IN, IN, rnn_dropout=rate, rngs=nnx.Rngs(9))
  x = jnp.ones((B, T, IN))
  u = cell._project(x, nnx.Rngs(dropout=0)).reshape(B, T, -1)
  np.testing.assert_allclose(u, jnp.broadcast_to(u[:, :1], u.shape), atol=1e-6)
  # Recover the masked input from x̂ W (W has full row rank): entries 0 or 1 / (1 − rate).
  w = np.asarray(cell.kernel[...], np.float64)
  masked = np.linalg.lstsq(w.T, np.asarray(u[:, 0], np.float64).T, rcond=None)[0].T
  assert set(np.round(np.unique(masked), 4)) == {0.0, round(1 / (1 - rate), 4)}
  np.testing.assert_allclose(cell._project(x).reshape(B, T, -1), x @ cell.kernel[...],
                             rtol=1e-6)
  # The recurrence gets the masked projection; the highway term the input without the mask.
  y = cell.scan(x, rngs=nnx.Rngs(dropout=0), implementation="sequential")[1]
  h, _ = oracle.sru(np.asarray(u).reshape(B, T, 1, 3, IN), np.asarray(x).reshape(B, T, 1, IN),
                    cell.weight_c[...], cell.bias[...], np.zeros((B, 1, IN)), [T] * B,
                    cell.scale_x, False)
  np.testing.assert_allclose(y, h.reshape(B, T, IN), rtol=1e-5, atol=1e-5)


def test_stack_places_dropout_like_the_official_one_and_takes_rngs():
  model = SRU(IN, 6, num_layers=2, dropout=0.5, rnn_dropout=0.2, rngs=nnx.Rngs(8))
  assert [layer.dropout.rate for layer in model.layers] == [0.5, 0.0]
  assert [layer.rnn_dropout.rate for layer in model.layers] == [0.2, 0.2]
  x = inputs(13)
  np.testing.assert_array_equal(model(x)[0], model(x)[0])
  a = model(x, rngs=nnx.Rngs(dropout=0))[0]
  np.testing.assert_array_equal(model(x, rngs=nnx.Rngs(dropout=0))[0], a)
  assert not np.allclose(model(x, rngs=nnx.Rngs(dropout=1))[0], a)
  assert not np.allclose(model(x)[0], a)


def test_initialisation_follows_the_official_recipe():
  cell = SRUCell(256, 128, highway_bias=-2.0, rescale=True, rngs=nnx.Rngs(9))
  assert cell.num_matrices == 4
  np.testing.assert_allclose(cell.scale_x, np.sqrt(1 + 2 * np.exp(-2.0)))
  bias = np.asarray(cell.bias[...])
  assert np.all(bias[:, 0] == 0.0) and np.all(bias[:, 1] == -2.0)
  w = np.asarray(cell.kernel[...]).reshape(256, 1, 4, 128)
  variances = w.var(axis=(0, 1, 3)) * 256
  np.testing.assert_allclose(variances, [1.0, 0.5, 0.5, 1 + 2 * np.exp(-2.0)], rtol=0.05)
  np.testing.assert_allclose(np.asarray(cell.weight_c[...]).var(), 0.5, rtol=0.2)  # 256 draws.


def test_initialisation_with_the_newer_options_follows_the_official_recipe():
  cell = SRUCell(256, 128, n_proj=64, dropout=0.1, rnn_dropout=0.2, has_skip_term=False,
                 highway_bias=-2.0, rescale=True, rngs=nnx.Rngs(10))
  # No highway term: three matrices although the widths differ, and no rescaling.
  assert cell.num_matrices == 3 and cell.scale_x == 1.0 and cell.projection_size == 64
  assert cell.weight_proj[...].shape == (256, 64) and cell.kernel[...].shape == (64, 384)
  np.testing.assert_allclose(np.asarray(cell.weight_proj[...]).var() * 256, 1.0, rtol=0.05)
  w = np.asarray(cell.kernel[...]).reshape(64, 3, 128)
  np.testing.assert_allclose(w.var(axis=(0, 2)) * 64, np.array([0.9, 0.5, 0.5]) * 0.8,
                             rtol=0.05)
  post = SRUCell(256, 128, layer_norm=True, normalize_after=True, rngs=nnx.Rngs(11))
  assert post.layer_norm.scale[...].shape == (128,)
  w = np.asarray(post.kernel[...]).reshape(256, 4, 128)
  np.testing.assert_allclose(w[:, 0].var() * 256, 0.01, rtol=0.05)  # × 0.1 either way.
  # As officially, a projection that would not narrow the layer is not made.
  assert SRUCell(IN, 4, n_proj=4, rngs=nnx.Rngs(0)).weight_proj is None


def test_bad_inputs_raise_clear_errors():
  cell = SRUCell(IN, 4, rngs=nnx.Rngs(10))
  with pytest.raises(ValueError, match="expects 6"):
    cell.scan(jnp.zeros((B, T, 5)))
  with pytest.raises(ValueError, match="carry must have shape"):
    cell.scan(inputs(), jnp.zeros((B, 5)))
  with pytest.raises(ValueError, match="call .scan"):
    cell(jnp.zeros((B, 4)), inputs())
  with pytest.raises(ValueError, match="c0 must have shape"):
    SRU(IN, 4, num_layers=2, rngs=nnx.Rngs(0))(inputs(), jnp.zeros((1, B, 4)))
  with pytest.raises(ValueError, match="Unknown SRU implementation"):
    SRUCell(IN, 4, implementation="cudnn", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="needs layer_norm=True"):
    SRUCell(IN, 4, normalize_after=True, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"rnn_dropout must be in \[0, 1\)"):
    SRUCell(IN, 4, rnn_dropout=1.0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="n_proj must be >= 0"):
    SRUCell(IN, 4, n_proj=-1, rngs=nnx.Rngs(0))



@pytest.fixture
def language_model(tiny_lm):
  def make(**cell_kwargs):
    return tiny_lm("sru", features=IN, num_layers=1, conv_kernel_size=0, mlp_expansion=1,
                   cell_kwargs=cell_kwargs, seed=12)
  return make


def test_a_misspelled_option_names_itself(language_model):
  with pytest.raises(ValueError, match="'sru' was given an option.*n_projection"):
    language_model(n_projection=4)


def test_blocks_pass_their_dropout_keys_to_the_cell(language_model):
  model = language_model(dropout=0.5, rnn_dropout=0.3, use_tanh=True, n_proj=3)
  cell = model.blocks[0].temporal.cell
  assert cell.projection_size == 3 and cell.use_tanh  # Options set from cell_kwargs.
  tokens = jnp.asarray(np.arange(2 * T).reshape(2, T) % 11, jnp.int32)
  logits = lambda m, key=None: m(tokens, rngs=None if key is None else nnx.Rngs(dropout=key))[0]
  a = logits(model, 0)
  np.testing.assert_array_equal(logits(model, 0), a)
  assert not np.allclose(logits(model, 1), a)
  # Without keys the block's output is the dropout-free model's.
  plain = _same_params(model, language_model(use_tanh=True, n_proj=3))
  np.testing.assert_array_equal(logits(model), logits(plain))
  assert not np.allclose(logits(plain, 0), a)


def test_training_with_sru_dropout_resumes_exactly(tiny_run, tmp_path):
  # The resume check of test_train, smaller: SRU dropout keys come from the train step.
  config = tiny_run("copy", num_steps=4)
  config.model.cell = "sru"
  config.model.cell_kwargs = config_dict.ConfigDict({"dropout": 0.3, "rnn_dropout": 0.2})
  # The copy protocol's decay groups spare a minRNN's input projection, which an SRU has not.
  config.train.weight_decay_on = "matrices"
  config.train.checkpoint_every = 2
  config.train.eval_every = 2
  straight = train_lib.train(config, tmp_path / "straight")
  config.train.stop_at_step = 2
  train_lib.train(config, tmp_path / "resumed")
  config.train.stop_at_step = None
  resumed = train_lib.train(config, tmp_path / "resumed")
  losses = lambda run: series(read_metrics(tmp_path / run / "metrics.jsonl"), "train", "loss")
  steps, resumed_losses = losses("resumed")
  assert steps == [1, 2, 3, 4] and np.all(np.isfinite(resumed_losses))
  assert (steps, resumed_losses) == losses("straight")
  assert resumed["eval"] == straight["eval"]


@pytest.mark.gpu
@pytest.mark.parametrize("kwargs", [{}, dict(use_tanh=True, has_skip_term=False)])
def test_compiled_layer_bfloat16_matches_float32(kwargs):
  cell = SRUCell(64, 64, bidirectional=False, rngs=nnx.Rngs(11), **kwargs)
  x = inputs(13, (4, 200, 64))
  _, y32 = cell.scan(x, implementation="pallas")
  cell16 = SRUCell(64, 64, dtype=jnp.bfloat16, rngs=nnx.Rngs(11), **kwargs)
  c16, y16 = cell16.scan(x.astype(jnp.bfloat16))
  assert y16.dtype == jnp.bfloat16 and c16.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(y16, np.float32), y32, rtol=5e-2, atol=5e-2)
