"""Tests of the Mosaic GPU linear-scan kernels (`kernels/linear_scan/pallas_mosaic.py`).

On CPU the kernels run in JAX's Mosaic GPU interpreter at tiny sizes (it simulates shared memory,
bulk copies and barriers); the same checks run compiled on a GPU (marked `gpu`, skipped without
one). Each case is compared with the float64 oracle (`tests/oracle.py`: values and the
hand-derived backward recurrence) and with JAX's autodiff through the pure-JAX reference. Errors
are relative: ||x - ref|| / ||ref||. The CUDA lowering (Pallas to Mosaic GPU) needs no GPU and is
checked on every machine.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cuda_lowering
import scan_kernel_checks
from minrnn.kernels.linear_scan import config as config_lib
from minrnn.kernels.linear_scan import MosaicConfig, mosaic_linear_scan

INTERPRET = scan_kernel_checks.INTERPRET


def _check_case(shape, dtype, reverse, interpret, config=None, backward_config=None, seed=0):
  scan_kernel_checks.check_case(mosaic_linear_scan, shape, dtype, reverse, interpret, config,
                                backward_config, seed)


@pytest.mark.parametrize("interpret", INTERPRET)
@pytest.mark.parametrize("reverse", [False, True])
def test_float32_tiles_do_not_divide(reverse, interpret):
  # T = 10 pads to 12 time steps (the interpreter's chunk is 4), D = 130 to two blocks of 128:
  # padded steps must keep the state (forward, reverse and the gradients that cross them).
  _check_case((2, 10, 130), jnp.float32, reverse, interpret)


@pytest.mark.parametrize("interpret", INTERPRET)
def test_bfloat16_inputs_accumulate_in_float32(interpret):
  # Tile-aligned: the wrapper pads nothing.
  _check_case((2, 12, 128), jnp.bfloat16, False, interpret, seed=1)


@pytest.mark.parametrize("interpret", INTERPRET)
def test_different_forward_and_backward_chunks(interpret):
  # Chunks 4 and 3: time pads to their multiple 12, and the backward's tile boundaries (where
  # h_{t-1} comes from the neighbouring tile's boundary row) fall elsewhere than the forward's.
  _check_case((1, 11, 128), jnp.float32, True, interpret,
              MosaicConfig(block_d=128, chunk=4, stages=3),
              MosaicConfig(block_d=128, chunk=3, stages=2), seed=2)


@pytest.mark.parametrize("interpret", INTERPRET)
def test_single_step(interpret):
  _check_case((2, 1, 128), jnp.float32, False, interpret, seed=3)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_default_tiles_at_benchmark_width(dtype, reverse):
  # The default tiles, with a long sequence and a width that the tiles don't divide.
  _check_case((3, 1000, 300), dtype, reverse, False, seed=4)


def test_no_initial_state_means_zeros():
  a, b, h0, _, _ = scan_kernel_checks.inputs((1, 5, 128), jnp.float32, 5)
  h, h_last = mosaic_linear_scan(a, b, interpret=True)
  h_zero, h_last_zero = mosaic_linear_scan(a, b, jnp.zeros_like(h0), interpret=True)
  np.testing.assert_array_equal(h, h_zero)
  np.testing.assert_array_equal(h_last, h_last_zero)


def test_dispatcher_runs_the_named_kernel():
  from minrnn.ops import linear_scan as dispatch

  a, b, h0, _, _ = scan_kernel_checks.inputs((1, 6, 128), jnp.float32, 6)
  h_ref, h_last_ref = dispatch(a, b, h0, implementation="associative")
  for name, kernel in (("pallas_triton", "linear_scan_forward"),
                       ("pallas", "linear_scan_forward"),
                       ("pallas_mosaic", "linear_scan_mosaic_forward")):
    run = lambda a, b, h0: dispatch(a, b, h0, implementation=name)
    assert kernel in str(jax.make_jaxpr(run)(a, b, h0))
    h, h_last = run(a, b, h0)
    assert scan_kernel_checks.rel(h, h_ref) < 1e-5 and scan_kernel_checks.rel(h_last, h_last_ref) < 1e-5
  with pytest.raises(ValueError, match="'pallas_cuda'.*pallas_mosaic"):
    dispatch(a, b, implementation="pallas_cuda")


def test_config_errors_say_what_to_change():
  with pytest.raises(ValueError, match="multiple of 128"):
    MosaicConfig(block_d=96, chunk=8, stages=2)
  with pytest.raises(ValueError, match="at least 1"):
    MosaicConfig(block_d=128, chunk=8, stages=0)
  a = jnp.ones((1, 8, 128))
  with pytest.raises(ValueError, match="shared memory.*Lower chunk"):
    mosaic_linear_scan(a, a, interpret=True, config=MosaicConfig(block_d=256, chunk=64, stages=4))
  with pytest.raises(ValueError, match="block_d.*must match"):
    mosaic_linear_scan(a, a, interpret=True, config=MosaicConfig(block_d=256, chunk=4, stages=2),
                       backward_config=MosaicConfig(block_d=128, chunk=4, stages=2))
  with pytest.raises(TypeError, match="float32 or bfloat16"):
    mosaic_linear_scan(a.astype(jnp.int32), a, interpret=True)


def test_default_tiles_fit_shared_memory():
  for dtype in (jnp.float32, jnp.bfloat16):
    itemsize = jnp.dtype(dtype).itemsize
    config_lib.mosaic_block_config(dtype).check_smem(3, itemsize)
    config_lib.mosaic_block_config(dtype, backward=True).check_smem(5, itemsize)


def test_kernels_lower_for_gpu_on_any_machine():
  # Pallas' Mosaic GPU lowering (layouts, bulk copies, barriers) runs when the program is lowered
  # for CUDA, which needs no GPU; compiling the module to GPU code still needs the device.
  a = jnp.full((2, 40, 200), 0.5, jnp.bfloat16)

  def fwd_bwd(a, b, h0):
    out, vjp = jax.vjp(lambda a, b, h0: mosaic_linear_scan(
        a, b, h0, reverse=True, interpret=False), a, b, h0)
    return vjp(out)

  text = cuda_lowering.lowered_text(fwd_bwd, a, a, jnp.zeros((2, 200)))
  # The forward and backward kernels.
  assert text.count("stablehlo.custom_call @mosaic_gpu") == 2
