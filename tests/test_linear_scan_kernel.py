"""Tests of the Pallas linear-scan kernels (`kernels/linear_scan`).

On CPU the kernels run in Pallas interpret mode at tiny sizes; the same checks run compiled on a
GPU (marked `gpu`, skipped without one). Each case is compared with a float64 NumPy oracle
(values and the hand-derived backward recurrence) and with JAX's autodiff through the pure-JAX
reference. Errors are relative: ||x - ref|| / ||ref||.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cuda_lowering
from kernels.linear_scan import BlockConfig, block_config, linear_scan
from kernels.linear_scan import reference

# float32 arithmetic on these lengths lands near 1e-7; bfloat16 inputs and outputs carry 8
# mantissa bits (relative rounding 2**-9 per element), so bf16 results are held to 1e-2.
TOL = {jnp.float32: 1e-5, jnp.bfloat16: 1e-2}

INTERPRET = [True, pytest.param(False, marks=pytest.mark.gpu, id="compiled")]


def _rel(x, ref):
  x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
  assert np.all(np.isfinite(x)), "non-finite values in the kernel's result"
  return np.linalg.norm(x - ref) / np.linalg.norm(ref)


def _oracle(a, b, h0, dh, dh_last, reverse):
  """float64 NumPy forward and backward of the scan; inputs `(batch, time, features)`."""
  a, b, h0, dh, dh_last = (np.asarray(x, np.float64) for x in (a, b, h0, dh, dh_last))
  if reverse:
    flip = lambda x: x[:, ::-1]
    h, h_last, da, db, dh0 = _oracle(flip(a), flip(b), h0, flip(dh), dh_last, False)
    return flip(h), h_last, flip(da), flip(db), dh0
  num_steps = a.shape[1]
  h = np.zeros_like(a)
  state = h0
  for t in range(num_steps):
    state = a[:, t] * state + b[:, t]
    h[:, t] = state
  h_prev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
  g = np.zeros_like(a)
  carry = dh_last
  for t in reversed(range(num_steps)):
    g[:, t] = dh[:, t] + carry
    carry = a[:, t] * g[:, t]
  return h, h[:, -1], g * h_prev, g, carry


def _inputs(shape, dtype, seed):
  batch, _, features = shape
  ks = jax.random.split(jax.random.key(seed), 5)
  # Decays in (0.5, 1) keep the state O(1) over the whole sequence, so errors accumulate visibly.
  a = jax.random.uniform(ks[0], shape, minval=0.5, maxval=1.0).astype(dtype)
  b = jax.random.normal(ks[1], shape).astype(dtype)
  h0 = jax.random.normal(ks[2], (batch, features), jnp.float32)
  dh = jax.random.normal(ks[3], shape).astype(dtype)
  dh_last = jax.random.normal(ks[4], (batch, features), jnp.float32)
  return a, b, h0, dh, dh_last


@functools.lru_cache(maxsize=None)
def _kernel_vjp(reverse, interpret, config):
  @jax.jit
  def fn(a, b, h0, dh, dh_last):
    out, vjp = jax.vjp(
        lambda a, b, h0: linear_scan(
            a, b, h0, reverse=reverse, interpret=interpret, config=config,
            backward_config=config,
        ),
        a, b, h0,
    )
    return out, vjp((dh, dh_last))

  return fn


@functools.lru_cache(maxsize=None)
def _reference_vjp(reverse):
  @jax.jit
  def fn(a, b, h0, dh, dh_last):
    out, vjp = jax.vjp(
        lambda a, b, h0: reference.linear_scan(a, b, h0, reverse=reverse), a, b, h0
    )
    return out, vjp((dh, dh_last))

  return fn


def _check_case(shape, dtype, reverse, interpret, config=None, seed=0):
  a, b, h0, dh, dh_last = _inputs(shape, dtype, seed)
  (h, h_last), (da, db, dh0) = _kernel_vjp(reverse, interpret, config)(a, b, h0, dh, dh_last)
  assert h.dtype == dtype and h.shape == shape
  assert h_last.dtype == jnp.float32 and h_last.shape == h0.shape
  assert da.dtype == dtype and db.dtype == dtype and dh0.dtype == jnp.float32
  tol = TOL[dtype]
  oracle = _oracle(a, b, h0, dh, dh_last, reverse)
  for name, got, want in zip(("h", "h_last", "da", "db", "dh0"),
                             (h, h_last, da, db, dh0), oracle):
    assert _rel(got, want) < tol, f"{name} differs from the float64 oracle"
  (h_ref, h_last_ref), grads_ref = _reference_vjp(reverse)(a, b, h0, dh, dh_last)
  for name, got, want in zip(("h", "h_last", "da", "db", "dh0"),
                             (h, h_last, da, db, dh0), (h_ref, h_last_ref, *grads_ref)):
    assert _rel(got, want) < tol, f"{name} differs from the JAX reference"


@pytest.mark.parametrize("interpret", INTERPRET)
@pytest.mark.parametrize("reverse", [False, True])
def test_float32_blocks_do_not_divide(reverse, interpret):
  # T = 37 is not a multiple of the time chunk, D = 12 not a multiple of block_d = 16 (8 on GPU
  # is forced by the config below): both the tail steps and the feature mask are exercised.
  config = BlockConfig(block_d=8, chunk=8) if not interpret else None
  _check_case((2, 37, 12), jnp.float32, reverse, interpret, config)


@pytest.mark.parametrize("interpret", INTERPRET)
def test_bfloat16_inputs_accumulate_in_float32(interpret):
  _check_case((2, 40, 16), jnp.bfloat16, False, interpret, seed=1)


@pytest.mark.parametrize("interpret", INTERPRET)
def test_several_feature_blocks_and_chunks(interpret):
  # Two feature blocks per row and T an exact multiple of the chunk (no tail loop).
  _check_case((2, 32, 16), jnp.float32, True, interpret, BlockConfig(block_d=8, chunk=4), seed=2)


@pytest.mark.parametrize("interpret", INTERPRET)
def test_single_step(interpret):
  _check_case((2, 1, 16), jnp.float32, False, interpret, seed=3)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_compiled_default_blocks_at_benchmark_width(dtype):
  # The tuned block shapes, with a long sequence and a width that the blocks don't divide.
  _check_case((3, 1000, 300), dtype, False, False, seed=4)


def test_no_initial_state_means_zeros():
  a, b, h0, _, _ = _inputs((2, 9, 8), jnp.float32, 5)
  h, h_last = linear_scan(a, b, interpret=True)
  h_zero, h_last_zero = linear_scan(a, b, jnp.zeros_like(h0), interpret=True)
  np.testing.assert_array_equal(h, h_zero)
  np.testing.assert_array_equal(h_last, h_last_zero)


def test_dispatcher_runs_the_kernel():
  from minrnn.ops import linear_scan as dispatch

  a, b, h0, _, _ = _inputs((2, 9, 8), jnp.float32, 6)
  h, h_last = dispatch(a, b, h0, implementation="pallas")
  h_ref, h_last_ref = dispatch(a, b, h0, implementation="associative")
  assert _rel(h, h_ref) < 1e-5 and _rel(h_last, h_last_ref) < 1e-5


def test_block_config_is_valid_for_odd_widths():
  for features in (1, 3, 100, 256, 1000):
    config = block_config(64, 512, features, jnp.float32)
    assert config.block_d & (config.block_d - 1) == 0
    assert config.block_d <= max(32, features) and config.chunk >= 1
  with pytest.raises(ValueError, match="power of two"):
    BlockConfig(block_d=12, chunk=4)


def test_bad_inputs_raise_clear_errors():
  a = jnp.ones((2, 5, 4))
  with pytest.raises(ValueError, match=r"\(batch, time, features\)"):
    linear_scan(a[0], a[0], interpret=True)
  with pytest.raises(ValueError, match="same shape"):
    linear_scan(a, a[:, :3], interpret=True)
  with pytest.raises(ValueError, match="h0 must have shape"):
    linear_scan(a, a, jnp.ones((2, 5)), interpret=True)
  with pytest.raises(TypeError, match="float32 or bfloat16"):
    linear_scan(a.astype(jnp.int32), a, interpret=True)
  with pytest.raises(ValueError, match="time axis is empty"):
    linear_scan(a[:, :0], a[:, :0], interpret=True)


def test_kernels_lower_for_gpu_on_any_machine():
  # Pallas' Triton lowering runs when the program is lowered for CUDA, which needs no GPU.
  a = jnp.full((2, 40, 48), 0.5, jnp.bfloat16)

  def fwd_bwd(a, b, h0):
    out, vjp = jax.vjp(lambda a, b, h0: linear_scan(
        a, b, h0, reverse=True, interpret=False), a, b, h0)
    return vjp(out)

  text = cuda_lowering.lowered_text(fwd_bwd, a, a, jnp.zeros((2, 48)))
  assert text.count("xla.gpu.triton") == 2  # The forward and backward kernels.
