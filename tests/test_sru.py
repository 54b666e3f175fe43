"""SRUCell and the SRU stack: oracle, step == sequence, continuation, padding, directions, options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import oracle
from minrnn.cells.sru import SRU, SRUCell
from minrnn.ops import flip_sequences

B, T, IN = 2, 6, 6


@pytest.fixture(autouse=True)
def full_precision_matmuls():
  # GPUs multiply float32 in TF32 by default; the float64 oracle needs full precision.
  with jax.default_matmul_precision("highest"):
    yield


def inputs(seed=0, shape=(B, T, IN)):
  return jax.random.normal(jax.random.key(seed), shape)


def cell_oracle(cell, x, carry, lengths, reverse=False):
  """The cell's float64 computation: layer norm, projection, then the recurrence oracle."""
  x = np.asarray(x, np.float64)
  x_hat = x
  if cell.layer_norm is not None:
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    x_hat = ((x - mean) / np.sqrt(var + cell.layer_norm.epsilon)
             * np.asarray(cell.layer_norm.scale[...]) + np.asarray(cell.layer_norm.bias[...]))
  batch, steps, _ = x.shape
  d, k, hidden = cell.directions, cell.num_matrices, cell.hidden_features
  u = (x_hat @ np.asarray(cell.kernel[...], np.float64)).reshape(batch, steps, d, k, hidden)
  x_seq = x.reshape(batch, steps, d, hidden) if k == 3 else None
  h, c = oracle.sru(u, x_seq, cell.weight_c[...], cell.bias[...],
                np.asarray(carry).reshape(batch, d, hidden), lengths, cell.scale_x, reverse)
  return h.reshape(batch, steps, d * hidden), c.reshape(batch, d * hidden)


@pytest.mark.parametrize("hidden,kwargs", [
    (6, dict(highway_bias=-1.0)),                                  # k = 3, rescaled x
    (4, dict(bidirectional=True, layer_norm=True, rescale=False)),  # k = 4, LN, 2 directions
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


@pytest.mark.parametrize("hidden", [6, 3])
def test_step_equals_scan(hidden):
  cell = SRUCell(IN, hidden, highway_bias=-2.0, rngs=nnx.Rngs(1))
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


def test_stack_pallas_and_sequential_agree_with_gradients():
  # Layer 0 projects its highway input (k = 4), layer 1 rescales it (k = 3). The kernel tests
  # cover two directions; one keeps interpret mode quick here.
  model = SRU(IN, 4, num_layers=2, layer_norm=True, rescale=True, rngs=nnx.Rngs(7))
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


def test_dropout_is_one_mask_per_sequence_and_off_in_eval():
  rate = 0.5
  model = SRU(IN, 6, num_layers=2, dropout=rate, rngs=nnx.Rngs(8))
  cell = model.layers[0]
  assert model.layers[1].dropout.rate == 0.0  # Between layers only, as the official stack.
  x = inputs(12)
  _, y_train = cell.scan(x, implementation="sequential")
  x_prime = cell.scale_x * x
  cell.eval()
  _, y_eval = cell.scan(x, implementation="sequential")
  ratio = np.asarray((y_train - x_prime) / (y_eval - x_prime))
  np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), atol=1e-3)  # Same over time.
  assert set(np.round(np.unique(ratio), 3)) <= {0.0, round(1 / (1 - rate), 3)}
  assert len(np.unique(np.round(ratio, 3))) == 2
  model.eval()
  np.testing.assert_allclose(model(x)[0], model(x)[0])


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


@pytest.mark.gpu
def test_compiled_layer_bfloat16_matches_float32():
  cell = SRUCell(64, 64, bidirectional=False, rngs=nnx.Rngs(11))
  x = inputs(13, (4, 200, 64))
  _, y32 = cell.scan(x, implementation="pallas")
  cell16 = SRUCell(64, 64, dtype=jnp.bfloat16, rngs=nnx.Rngs(11))
  c16, y16 = cell16.scan(x.astype(jnp.bfloat16))
  assert y16.dtype == jnp.bfloat16 and c16.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(y16, np.float32), y32, rtol=5e-2, atol=5e-2)
