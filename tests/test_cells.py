"""minGRU / minLSTM cells: every path against the float64 oracle, each other and the step path."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import oracle
from minrnn.cells import GRU, LSTM, Bidirectional, MinGRU, MinLSTM

PATHS = ("associative", "log", "heinsen", "sequential")
B, T, IN, H = 2, 11, 3, 4
CELLS = {
    "mingru": lambda **kw: MinGRU(IN, H, rngs=nnx.Rngs(0), **kw),
    "minlstm": lambda **kw: MinLSTM(IN, H, rngs=nnx.Rngs(0), **kw),
    "minlstm-unnormalized": lambda **kw: MinLSTM(IN, H, normalize=False, rngs=nnx.Rngs(0), **kw),
}


def inputs(seed=0, t=T):
  k = jax.random.split(jax.random.key(seed), 2)
  x = 2.0 * jax.random.normal(k[0], (B, t, IN))
  h0 = jnp.exp(jax.random.normal(k[1], (B, H)))  # Positive, as the cells' states are.
  return x, h0


def oracle_scan(name, cell, x, h0):
  kernel, bias = cell.proj.kernel[...], cell.proj.bias[...]
  if name == "mingru":
    return oracle.mingru(x, kernel, bias, h0)
  return oracle.minlstm(x, kernel, bias, h0, normalize=cell.normalize)


@pytest.mark.parametrize("implementation", PATHS)
@pytest.mark.parametrize("name", CELLS)
def test_scan_matches_oracle_with_initial_state(name, implementation):
  cell = CELLS[name]()
  x, h0 = inputs()
  carry, y = cell.scan(x, h0, implementation=implementation)
  want, want_last = oracle_scan(name, cell, x, h0)
  np.testing.assert_allclose(y, want, rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(carry, want_last, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", CELLS)
def test_step_path_matches_scan(name):
  cell = CELLS[name]()
  x, h0 = inputs(1)
  carry, ys = h0, []
  for t in range(T):
    carry, y = cell(carry, x[:, t])
    ys.append(y)
  scan_carry, scan_y = cell.scan(x, h0)
  np.testing.assert_allclose(jnp.stack(ys, 1), scan_y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry, scan_carry, rtol=1e-5, atol=1e-6)
  # Flax's own RNN wrapper drives the step path.
  rnn_carry, rnn_y = nnx.RNN(cell, return_carry=True)(x, initial_carry=h0)
  np.testing.assert_allclose(rnn_y, scan_y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(rnn_carry, scan_carry, rtol=1e-5, atol=1e-6)


@functools.lru_cache(maxsize=None)
def _gradients(name, implementation):
  """Gradients of a random projection of (y, carry) w.r.t. parameters, inputs and carry."""
  graphdef, params = nnx.split(CELLS[name]())
  x, h0 = inputs(2)
  k = jax.random.split(jax.random.key(3), 2)
  dy, dcarry = jax.random.normal(k[0], (B, T, H)), jax.random.normal(k[1], (B, H))

  def loss(params, x, h0):
    carry, y = nnx.merge(graphdef, params).scan(x, h0, implementation=implementation)
    return jnp.sum(y * dy) + jnp.sum(carry * dcarry)

  return jax.grad(loss, argnums=(0, 1, 2))(params, x, h0)


@pytest.mark.parametrize("implementation", ["associative", "log", "heinsen"])
@pytest.mark.parametrize("name", CELLS)
def test_gradients_agree_across_paths(name, implementation):
  rtol = 5e-3 if implementation == "heinsen" else 1e-4
  want = jax.tree.leaves(_gradients(name, "sequential"))
  got = jax.tree.leaves(_gradients(name, implementation))
  assert len(got) == len(want) == 4  # kernel, bias, x, carry
  for g, w in zip(got, want):
    assert bool(jnp.all(jnp.isfinite(g)))
    np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-5)


def test_carry_gradient_matches_finite_differences_of_oracle():
  """Anchors the cross-path gradient checks to the float64 equations."""
  cell = CELLS["mingru"]()
  kernel, bias = cell.proj.kernel[...], cell.proj.bias[...]
  x, h0 = inputs(2)  # The inputs _gradients uses.
  k = jax.random.split(jax.random.key(3), 2)
  dy = np.asarray(jax.random.normal(k[0], (B, T, H)))
  dcarry = np.asarray(jax.random.normal(k[1], (B, H)))

  def loss(h0):
    y, carry = oracle.mingru(x, kernel, bias, h0)
    return np.sum(y * dy) + np.sum(carry * dcarry)

  grad = _gradients("mingru", "sequential")[2]
  h0, eps = np.asarray(h0, np.float64), 1e-6
  for index in [(0, 0), (1, 3)]:
    bump = np.zeros_like(h0)
    bump[index] = eps
    numeric = (loss(h0 + bump) - loss(h0 - bump)) / (2 * eps)
    np.testing.assert_allclose(grad[index], numeric, rtol=1e-4)


@pytest.mark.parametrize("implementation", PATHS)
@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_continuation_uses_the_state_not_g_of_the_state(name, implementation):
  """T1 then T2 from the returned carry equals T1 + T2 (the public ports' log-space bug)."""
  cell = CELLS[name]()
  x, h0 = inputs(5)
  carry, y = cell.scan(x, h0, implementation=implementation)
  carry1, y1 = cell.scan(x[:, :4], h0, implementation=implementation)
  carry2, y2 = cell.scan(x[:, 4:], carry1, implementation=implementation)
  np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry2, carry, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("implementation", PATHS)
def test_reverse_matches_flipped_oracle(implementation):
  cell = CELLS["mingru"]()
  x, h0 = inputs(6)
  carry, y = cell.scan(x, h0, reverse=True, implementation=implementation)
  want, want_last = oracle.mingru(x[:, ::-1], cell.proj.kernel[...], cell.proj.bias[...], h0)
  np.testing.assert_allclose(y, want[:, ::-1], rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(carry, want_last, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("implementation", PATHS)
def test_padding(implementation, reverse):
  """Each padded row behaves like its unpadded prefix; padded outputs are zero."""
  cell = CELLS["minlstm"]()
  x, h0 = inputs(7)
  lengths = jnp.array([T, 5])
  carry, y = cell.scan(x, h0, seq_lengths=lengths, reverse=reverse, implementation=implementation)
  for row, length in enumerate(lengths.tolist()):
    row_carry, row_y = cell.scan(x[row:row + 1, :length], h0[row:row + 1], reverse=reverse,
                                 implementation=implementation)
    np.testing.assert_allclose(y[row, :length], row_y[0], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(carry[row], row_carry[0], rtol=2e-5, atol=1e-6)
    assert bool(jnp.all(y[row, length:] == 0))
  grad = jax.grad(lambda x: cell.scan(x, h0, seq_lengths=lengths, reverse=reverse,
                                      implementation=implementation)[1].sum())(x)
  assert bool(jnp.all(jnp.isfinite(grad)))
  assert bool(jnp.all(grad[1, 5:] == 0))  # Padding never influences the outputs.


@pytest.mark.parametrize("implementation", ["associative", "log"])
def test_bfloat16(implementation):
  """bf16 compute: outputs bf16, carry float32, within 3% of the float32 cell."""
  cell32 = CELLS["mingru"]()
  cell16 = CELLS["mingru"](dtype=jnp.bfloat16)
  x, h0 = inputs(8)
  carry, y = cell16.scan(x.astype(jnp.bfloat16), h0, implementation=implementation)
  assert y.dtype == jnp.bfloat16 and carry.dtype == jnp.float32
  want_carry, want_y = cell32.scan(x, h0, implementation=implementation)
  np.testing.assert_allclose(y.astype(jnp.float32), want_y, rtol=3e-2, atol=3e-2)
  np.testing.assert_allclose(carry, want_carry, rtol=3e-2, atol=3e-2)


def test_learned_initial_state_is_positive_and_trained():
  cell = CELLS["mingru"](learn_initial_state=True)
  x, _ = inputs(9)
  carry = cell.initialize_carry((B, IN))
  assert carry.shape == (B, H) and bool(jnp.all(carry > 0))
  graphdef, params = nnx.split(cell)
  grads = jax.grad(lambda p: nnx.merge(graphdef, p).scan(x)[1].sum())(params)
  assert float(jnp.abs(grads["initial_state"][...]).sum()) > 0


def test_default_initial_state_is_zero():
  cell = CELLS["minlstm"]()
  assert bool(jnp.all(cell.initialize_carry((B, IN)) == 0))


@pytest.mark.parametrize("normalize,h1", [
    # Zero weights, forget_bias 3: f = σ(3) = 0.9525741268224334, i = σ(0) = 0.5, g(0) = 0.5.
    # Normalised: f' = f / (f + i) = 0.6557834875568307, i' = i / (f + i); from h0 = 1,
    # h1 = f' * 1 + i' * 0.5.
    (True, 0.8278917437784153),
    (False, 1.2025741268224333),  # h1 = f * 1 + i * 0.5.
])
@pytest.mark.parametrize("implementation", PATHS)
def test_minlstm_forget_bias_shifts_the_forget_gate(normalize, h1, implementation):
  zeros = nnx.initializers.zeros_init()
  cell = MinLSTM(IN, H, normalize=normalize, forget_bias=3.0, kernel_init=zeros,
                 bias_init=zeros, rngs=nnx.Rngs(0))
  # The official code adds it to the forget gate's bias only (`forget_bias_init_scale`).
  np.testing.assert_array_equal(cell.proj.bias[...], [3.0] * H + [0.0] * 2 * H)
  x = jnp.ones((B, 1, IN))
  h0 = jnp.ones((B, H))
  carry, _ = cell.scan(x, h0, implementation=implementation)
  np.testing.assert_allclose(carry, h1, rtol=1e-6)
  np.testing.assert_allclose(cell(h0, x[:, 0])[0], h1, rtol=1e-6)
  with pytest.raises(ValueError, match="forget_bias .* needs use_bias=True"):
    MinLSTM(IN, H, forget_bias=3.0, use_bias=False, rngs=nnx.Rngs(0))


def test_bidirectional_matches_two_scans_and_flax_wrapper():
  forward, backward = MinGRU(IN, H, rngs=nnx.Rngs(1)), MinGRU(IN, H, rngs=nnx.Rngs(2))
  bidi = Bidirectional(forward, backward)
  x, _ = inputs(10)
  lengths = jnp.array([T, 6])
  (carry_f, carry_b), y = bidi.scan(x, seq_lengths=lengths)
  assert y.shape == (B, T, 2 * H)
  _, y_f = forward.scan(x, seq_lengths=lengths)
  _, y_b = backward.scan(x, seq_lengths=lengths, reverse=True)
  np.testing.assert_allclose(y, jnp.concatenate([y_f, y_b], -1), rtol=1e-6)
  flax_bidi = nnx.Bidirectional(nnx.RNN(forward), nnx.RNN(backward, reverse=True, keep_order=True))
  flax_y = flax_bidi(x, seq_lengths=lengths)
  valid = (jnp.arange(T)[None, :] < lengths[:, None])[..., None]
  np.testing.assert_allclose(jnp.where(valid, flax_y, 0), y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_flax_baselines_scan_matches_flax_rnn(cls):
  cell = cls(IN, H, rngs=nnx.Rngs(0))
  x, _ = inputs(11)
  carry, y = cell.scan(x)
  flax_carry, flax_y = nnx.RNN(cell, return_carry=True)(x)
  np.testing.assert_allclose(y, flax_y, rtol=1e-5, atol=1e-6)
  for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(flax_carry)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  lengths = jnp.array([T, 4])
  carry, y = cell.scan(x, seq_lengths=lengths, reverse=True)
  _, row_y = cell.scan(x[1:, :4], reverse=True)
  np.testing.assert_allclose(y[1, :4], row_y[0], rtol=1e-5, atol=1e-6)
  assert bool(jnp.all(y[1, 4:] == 0))
  with pytest.raises(ValueError, match="only runs sequentially"):
    cell.scan(x, implementation="log")


@pytest.mark.parametrize("call,match", [
    (lambda c: c.scan(jnp.ones((T, IN))), "batch, time, features"),
    (lambda c: c.scan(jnp.ones((B, T, IN + 1))), f"expects {IN}"),
    (lambda c: c.scan(jnp.ones((B, T, IN)), implementation="cuda"), "Unknown linear-scan"),
    (lambda c: c(jnp.zeros((B, H)), jnp.ones((B, IN + 2))), r"\.scan\(x\)"),
])
def test_bad_input_raises_clear_error(call, match):
  with pytest.raises(ValueError, match=match):
    call(CELLS["mingru"]())
