"""Tests of the Pallas linear-scan kernels (`kernels/linear_scan`).

On CPU the kernels run in Pallas interpret mode at tiny sizes; the same checks run compiled on a
GPU (marked `gpu`, skipped without one). Each case is compared with a float64 NumPy oracle
(`tests/oracle.py`: values and the hand-derived backward recurrence) and with JAX's autodiff through the pure-JAX
reference. Errors are relative: ||x - ref|| / ||ref||.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cuda_lowering
import scan_kernel_checks
from minrnn.kernels.linear_scan import BlockConfig, block_config, linear_scan

INTERPRET = scan_kernel_checks.INTERPRET


def _check_case(shape, dtype, reverse, interpret, config=None, seed=0):
  scan_kernel_checks.check_case(linear_scan, shape, dtype, reverse, interpret, config, config,
                                seed)


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
  a, b, h0, _, _ = scan_kernel_checks.inputs((2, 9, 8), jnp.float32, 5)
  h, h_last = linear_scan(a, b, interpret=True)
  h_zero, h_last_zero = linear_scan(a, b, jnp.zeros_like(h0), interpret=True)
  np.testing.assert_array_equal(h, h_zero)
  np.testing.assert_array_equal(h_last, h_last_zero)


def test_dispatcher_runs_the_kernel():
  from minrnn.ops import linear_scan as dispatch

  a, b, h0, _, _ = scan_kernel_checks.inputs((2, 9, 8), jnp.float32, 6)
  h, h_last = dispatch(a, b, h0, implementation="pallas")
  h_ref, h_last_ref = dispatch(a, b, h0, implementation="associative")
  assert scan_kernel_checks.rel(h, h_ref) < 1e-5 and scan_kernel_checks.rel(h_last, h_last_ref) < 1e-5


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
