"""SRU's benchmark cases, as data for the one runner (`scripts/benchmark.py --suites sru`).

Two ops, batch-major `(batch, time, features)`, forward and forward+backward (the gradients of
the input and of every parameter, pulled back from a cotangent of `h`):

- `"sru recurrence"`: the elementwise recurrence alone on a precomputed projection
  (`recurrence_inputs`), the Pallas kernel once per configuration of `SWEEP` (the tuning grid).
- `"sru layer"`: the library's SRU layer (one matmul for the projection, then the recurrence),
  through the `minrnn.ops.sru` paths named in `IMPLEMENTATIONS` (`REFERENCE_ONLY` ones at the
  shortest length only).

The runner adds the official `sru` package's CUDA kernel and cuDNN's LSTM as peers. Matmuls
use TF32 in both frameworks (JAX's default for float32 on a GPU; the runner allows it in
PyTorch), so the layers compare like for like.

Memory floors (`FLOOR_ARRAYS`, arrays of B·T·D moved once at the measured copy bandwidth): the
recurrence forward reads u0, u1, u2, x and writes h (5); forward+backward also writes c forward
and reads u0..u2, x, c, dh and writes du0..du2, dx backward (16). The layer adds the
projection's input read and u write (4 forward; 4 + 8 backward: x and du read twice for dx and
dW, dx written).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from minrnn.kernels.sru.pallas_triton import KernelConfig

RECURRENCE = "sru recurrence"
LAYER = "sru layer"
FLOOR_ARRAYS = {(RECURRENCE, "fwd"): 5, (RECURRENCE, "fwd+bwd"): 16,
                (LAYER, "fwd"): 9, (LAYER, "fwd+bwd"): 28}
# Table names of `minrnn.ops.sru` the layer and recurrence are timed through.
IMPLEMENTATIONS = ("pallas", "sequential")
# Paths timed at the shortest length and first dtype only: the sequential reference walks time
# step by step (tens of milliseconds at T=512).
REFERENCE_ONLY = ("sequential",)
# The Pallas kernel's tuning grid; with the sweep off, `KernelConfig()` alone.
SWEEP = (
    KernelConfig(32, 8), KernelConfig(32, 16), KernelConfig(16, 8),
    KernelConfig(64, 16, prefetch=False),
)
# Results names of our paths (the names the recorded results use).
NAMES = {"pallas": "minrnn pallas", "sequential": "minrnn lax.scan"}


def config_name(config: KernelConfig) -> str:
  """`minrnn pallas bf=<block_features> tc=<time_chunk> w=<warps>[ prefetch]`."""
  return (f"{NAMES['pallas']} bf={config.block_features} tc={config.time_chunk} "
          f"w={config.num_warps}{' prefetch' if config.prefetch else ''}")


def recurrence_inputs(batch: int, time: int, features: int, dtype: str, seed: int
                      ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """`(u, x, weight_c, bias)` of one direction with the highway term: u `(batch, time, 1, 3,
  features)` and x `(batch, time, 1, features)` standard normal in `dtype`; weight_c
  `(1, 2, features)` uniform in [-1, 1) and bias zeros `(1, 2, features)`, float32."""
  keys = jax.random.split(jax.random.key(seed), 3)
  u = jax.random.normal(keys[0], (batch, time, 1, 3, features), jnp.float32).astype(dtype)
  x = jax.random.normal(keys[1], (batch, time, 1, features), jnp.float32).astype(dtype)
  weight_c = jax.random.uniform(keys[2], (1, 2, features), jnp.float32, -1, 1)
  return u, x, weight_c, jnp.zeros((1, 2, features), jnp.float32)
