"""Lowering a program for an NVIDIA GPU on a machine without one, for the kernels' tests.

Pallas' Triton and Mosaic GPU lowerings run when a program is lowered for CUDA, so an op a
kernel cannot express on the GPU fails on any machine; only compiling to device code and running
need the GPU. Newer JAX asks which GPU to lower for when none is present: an H100, the target
these kernels are tuned for.
"""

import contextlib

import jax


def _target_h100():
  # A one-device abstract mesh that names the GPU; older JAX reads nothing from it and lowers
  # for CUDA without it.
  device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100", num_cores=None, platform="cuda")
  mesh = jax.sharding.AbstractMesh((1,), ("gpu",), abstract_device=device)
  return jax.sharding.use_abstract_mesh(mesh)


def lowered_text(fn, *args) -> str:
  """The StableHLO text of `jax.jit(fn)(*args)` lowered for CUDA."""
  context = (contextlib.nullcontext() if jax.default_backend() == "gpu" else _target_h100())
  with context:
    return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
