"""Block shapes of the Pallas linear-scan kernels: the one place that chooses them.

Each program of the kernel owns one batch row and `block_d` features, walks the whole time axis,
and loads `chunk` time steps per loop iteration (all loads of a chunk are issued before the
multiply-add chain that consumes them, so many bytes are in flight per program). The values for
GPUs were tuned on an H100 (see NOTES.md beside this file); off GPU the kernels run in interpret
mode, where only correctness matters and small blocks keep the tests fast.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class BlockConfig:
  """Tiling of one linear-scan kernel launch.

  Attributes:
    block_d: features per program; a power of two (Triton's tensors need one). Features past
      `D` in the last block are masked.
    chunk: time steps loaded per loop iteration; the `T % chunk` remaining steps run unrolled
      after the loop.
    num_warps: warps per program.
    num_stages: Triton's software-pipelining depth for the time loop.
  """

  block_d: int
  chunk: int
  num_warps: int = 1
  num_stages: int = 1

  def __post_init__(self):
    if self.block_d < 1 or self.block_d & (self.block_d - 1):
      raise ValueError(f"block_d must be a positive power of two, got {self.block_d}.")
    if self.chunk < 1:
      raise ValueError(f"chunk must be at least 1, got {self.chunk}.")
    if self.num_warps < 1 or self.num_stages < 1:
      raise ValueError(
          f"num_warps and num_stages must be at least 1, got {self.num_warps} and "
          f"{self.num_stages}."
      )


# Values one thread loads per chunk on GPU: 64 keeps two chunks (computed and in flight) within
# one warp's register budget; it gives the tuned plain-scan chunks (32 forward, 16 backward).
_LOADS_PER_CHUNK = 64


def _next_power_of_two(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


def _previous_power_of_two(n: int) -> int:
  return 1 << (n.bit_length() - 1)


def block_config(
    batch: int,
    time: int,
    features: int,
    dtype: jnp.dtype,
    *,
    backward: bool = False,
    interpret: bool = False,
    loads_per_step: int | None = None,
) -> BlockConfig:
  """Block shapes for a `(batch, time, features)` scan with inputs of `dtype`.

  Args:
    batch, time, features: the problem's shape.
    dtype: the dtype of `a` and `b` (float32 or bfloat16).
    backward: True for the backward kernel, which moves five arrays per step instead of three.
    interpret: True when the kernel runs in interpret mode (off GPU).
    loads_per_step: `(block_d,)` vectors the kernel loads per time step; None means the plain
      scan's (2 forward: `a`, `b`; 3 backward: `a`, `dh`, `h`). Kernels that load more per
      step (the fused-gate kernels) get shorter chunks.
  """
  del batch, time, dtype
  if interpret:
    return BlockConfig(block_d=min(16, _next_power_of_two(features)), chunk=8)
  # One warp per program, one feature per lane: the most programs for a given batch x width, so
  # small batches still spread over every SM. On an H100 this was within 3% of the best tuned
  # shape at B=64 D=256 and B=8 D=1024, float32 and bfloat16. Two chunks of loads live in
  # registers (the one computed and the one in flight): 2 x 32 x 2 values forward, 2 x 16 x 3
  # backward, under the register budget of one warp per program. Kernels with more loads per
  # step keep to the same budget with shorter chunks.
  loads = loads_per_step or (3 if backward else 2)
  if loads < 1:
    raise ValueError(f"loads_per_step must be at least 1, got {loads_per_step}.")
  chunk = min(32, _previous_power_of_two(max(1, _LOADS_PER_CHUNK // loads)))
  return BlockConfig(block_d=min(32, _next_power_of_two(features)), chunk=chunk, num_warps=1,
                     num_stages=1)


def default_interpret() -> bool:
  """Interpret mode unless JAX's default backend is a GPU."""
  return jax.default_backend() != "gpu"


# Shared memory per thread block on Hopper (227 KiB usable of 228 KiB).
_HOPPER_SMEM_BYTES = 227 * 1024
# Threads of a Mosaic GPU warpgroup; each owns `block_d / 128` features of a tile.
_WARPGROUP = 128


@dataclasses.dataclass(frozen=True)
class MosaicConfig:
  """Tiling of one Mosaic GPU linear-scan kernel launch.

  Each thread block (one warpgroup of 128 threads) owns one batch row and `block_d` features and
  walks the time axis in tiles of `(chunk, block_d)`: bulk (TMA) copies bring `stages` tiles of
  every input into shared memory ahead of the one being scanned, and every output tile goes back
  with a bulk copy from a `stages`-deep staging buffer.

  Attributes:
    block_d: features per thread block; a multiple of 128 (each thread owns `block_d / 128`).
    chunk: time steps per tile; the scan of one tile is unrolled.
    stages: tiles of each array in flight (the pipeline's depth); at least 1.
  """

  block_d: int
  chunk: int
  stages: int

  def __post_init__(self):
    if self.block_d < 1 or self.block_d % _WARPGROUP:
      raise ValueError(
          f"block_d must be a positive multiple of {_WARPGROUP} (one warpgroup), got "
          f"{self.block_d}."
      )
    if self.chunk < 1 or self.stages < 1:
      raise ValueError(
          f"chunk and stages must be at least 1, got {self.chunk} and {self.stages}."
      )

  def smem_bytes(self, tiles: int, itemsize: int) -> int:
    """Shared memory of a kernel that buffers `tiles` `(chunk, block_d)` tiles per stage."""
    return self.stages * tiles * self.chunk * self.block_d * itemsize

  def fits_smem(self, tiles: int, itemsize: int) -> bool:
    """Whether `tiles` tiles per stage fit in a Hopper thread block's shared memory."""
    return self.smem_bytes(tiles, itemsize) <= _HOPPER_SMEM_BYTES

  def check_smem(self, tiles: int, itemsize: int) -> None:
    """Raises if `tiles` tiles per stage do not fit in a Hopper thread block's shared memory."""
    need = self.smem_bytes(tiles, itemsize)
    if not self.fits_smem(tiles, itemsize):
      raise ValueError(
          f"MosaicConfig {self} needs {need} bytes of shared memory for {tiles} tiles per stage "
          f"of {itemsize}-byte values; a Hopper thread block has {_HOPPER_SMEM_BYTES}. Lower "
          "chunk, block_d or stages."
      )


def mosaic_block_config(
    dtype: jnp.dtype, *, backward: bool = False, interpret: bool = False
) -> MosaicConfig:
  """Tiles of the Mosaic GPU kernels for inputs of `dtype` (float32 or bfloat16).

  Not yet tuned on a GPU: 128 features per block gives the most thread blocks (64 x 256 -> 128,
  about one per H100 SM); chunk and stages keep two tiles of every input in flight while one is
  scanned, within shared memory (forward 3 tiles per stage, backward 5: 144 KiB and 120 KiB in
  float32). Interpret mode uses short tiles so that tiny test sequences span several of them.
  """
  del dtype
  if interpret:
    return MosaicConfig(block_d=_WARPGROUP, chunk=4, stages=2)
  return MosaicConfig(block_d=_WARPGROUP, chunk=16 if backward else 32, stages=3)
