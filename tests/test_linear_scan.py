"""`minrnn.ops.linear_scan`: every execution path against the float64 oracle and each other."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oracle
from minrnn.ops import linear_scan, log_linear_scan, resolve_name

# The Pallas path has its own tests (tests/test_linear_scan_kernel.py): interpreted on CPU it is
# too slow to sweep here.
PATHS = ("associative", "log", "heinsen", "sequential")
B, T, D = 2, 13, 5
# Heinsen's form subtracts cumulative sums of log a and adds them back, so float32 rounding
# shows at about 1e-3 in gradients; the other paths stay near 1e-6.
GRAD_RTOL = {"heinsen": 5e-3}


def positive_inputs(seed, shape=(B, T, D)):
  """a in (0, 1), b > 0, h0 > 0: the cells' regime, valid for every path."""
  k = jax.random.split(jax.random.key(seed), 3)
  a = jax.nn.sigmoid(2.0 * jax.random.normal(k[0], shape))
  b = jnp.exp(jax.random.normal(k[1], shape))
  h0 = jnp.exp(jax.random.normal(k[2], (shape[0], shape[2])))
  return a, b, h0


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("implementation", PATHS)
def test_matches_oracle(implementation, reverse):
  a, b, h0 = positive_inputs(0)
  for initial in (None, h0):
    h, h_last = linear_scan(a, b, initial, reverse=reverse, implementation=implementation)
    want, want_last = oracle.linear_scan(a, b, initial, reverse=reverse)
    assert h.dtype == jnp.float32 and h_last.dtype == jnp.float32
    np.testing.assert_allclose(h, want, rtol=2e-5)
    np.testing.assert_allclose(h_last, want_last, rtol=2e-5)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("implementation", PATHS)
def test_gradients_match_adjoint_oracle(implementation, reverse):
  a, b, h0 = positive_inputs(1)
  k = jax.random.split(jax.random.key(2), 2)
  dh = jax.random.normal(k[0], a.shape)
  dh_last = jax.random.normal(k[1], h0.shape)

  def loss(a, b, h0):
    h, h_last = linear_scan(a, b, h0, reverse=reverse, implementation=implementation)
    return jnp.sum(h * dh) + jnp.sum(h_last * dh_last)

  got = jax.grad(loss, argnums=(0, 1, 2))(a, b, h0)
  want = oracle.linear_scan_vjp(a, b, h0, dh, dh_last, reverse=reverse)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=GRAD_RTOL.get(implementation, 1e-4), atol=1e-5)


@pytest.mark.parametrize("implementation", ["associative", "sequential"])
def test_linear_paths_accept_any_sign(implementation):
  k = jax.random.split(jax.random.key(3), 3)
  a = jax.random.normal(k[0], (B, T, D))
  b = jax.random.normal(k[1], (B, T, D))
  h0 = jax.random.normal(k[2], (B, D))
  h, h_last = linear_scan(a, b, h0, implementation=implementation)
  want, want_last = oracle.linear_scan(a, b, h0)
  np.testing.assert_allclose(h, want, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(h_last, want_last, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("implementation", PATHS)
def test_continuation(implementation):
  """Scanning T1 steps, then T2 from the returned state, equals scanning T1 + T2."""
  a, b, h0 = positive_inputs(4)
  h, h_last = linear_scan(a, b, h0, implementation=implementation)
  h1, carry = linear_scan(a[:, :6], b[:, :6], h0, implementation=implementation)
  h2, carry = linear_scan(a[:, 6:], b[:, 6:], carry, implementation=implementation)
  np.testing.assert_allclose(jnp.concatenate([h1, h2], 1), h, rtol=1e-5)
  np.testing.assert_allclose(carry, h_last, rtol=1e-5)


@pytest.mark.parametrize("implementation", PATHS)
def test_log_entry_point(implementation):
  a, b, h0 = positive_inputs(5)
  log_h, log_h_last = log_linear_scan(
      jnp.log(a), jnp.log(b), jnp.log(h0), implementation=implementation)
  want, want_last = oracle.linear_scan(a, b, h0)
  np.testing.assert_allclose(log_h, np.log(want), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(log_h_last, np.log(want_last), rtol=1e-5, atol=1e-5)
  grads = jax.grad(lambda la: log_linear_scan(la, jnp.log(b), implementation=implementation)[0]
                   .sum())(jnp.log(a))
  assert bool(jnp.all(jnp.isfinite(grads)))


@pytest.mark.parametrize("implementation", PATHS)
def test_bfloat16_inputs(implementation):
  """bf16 in, bf16 h out, float32 carry; error bounded by bf16 rounding of the inputs/outputs."""
  a, b, h0 = positive_inputs(6)
  a16, b16 = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
  h, h_last = linear_scan(a16, b16, h0, implementation=implementation)
  assert h.dtype == jnp.bfloat16 and h_last.dtype == jnp.float32
  want, want_last = oracle.linear_scan(a16.astype(jnp.float32), b16.astype(jnp.float32), h0)
  np.testing.assert_allclose(h.astype(jnp.float32), want, rtol=1e-2)
  np.testing.assert_allclose(h_last, want_last, rtol=1e-5)


@pytest.mark.parametrize("implementation,rtol", [
    ("associative", 1e-4), ("log", 1e-4),
    # Heinsen's form subtracts cumulative sums that grow with T: rounding grows with it.
    ("heinsen", 5e-2),
])
def test_long_sequence_stays_finite(implementation, rtol):
  a, b, h0 = positive_inputs(7, shape=(1, 16384, 4))
  h, h_last = jax.jit(lambda a, b, h0: linear_scan(a, b, h0, implementation=implementation))(
      a, b, h0)
  want, want_last = jax.jit(lambda a, b, h0: linear_scan(a, b, h0, implementation="sequential"))(
      a, b, h0)
  assert bool(jnp.all(jnp.isfinite(h)))
  np.testing.assert_allclose(h, want, rtol=rtol)
  np.testing.assert_allclose(h_last, want_last, rtol=rtol)


def test_default_path_depends_on_platform():
  assert resolve_name(None, platform="cpu") == "associative"
  assert resolve_name(None, platform="gpu") == "pallas_triton"
  assert resolve_name("pallas") == "pallas_triton"
  assert resolve_name("log") == "log"


@pytest.mark.parametrize("args,kwargs,error,match", [
    ((jnp.ones((2, 3)), jnp.ones((2, 3))), {}, ValueError, "batch, time, features"),
    ((jnp.ones((2, 3, 4)), jnp.ones((2, 3, 5))), {}, ValueError, "same shape"),
    ((jnp.ones((2, 3, 4)), jnp.ones((2, 3, 4)), jnp.ones((2, 5))), {}, ValueError, "h0"),
    ((jnp.ones((2, 3, 4), jnp.int32), jnp.ones((2, 3, 4))), {}, TypeError, "floating"),
    ((jnp.ones((2, 3, 4)), jnp.ones((2, 3, 4))), {"implementation": "fast"}, ValueError,
     "Unknown linear-scan implementation 'fast'"),
])
def test_bad_input_raises_clear_error(args, kwargs, error, match):
  with pytest.raises(error, match=match):
    linear_scan(*args, **kwargs)
