"""SRU's elementwise recurrence: input checks and the one table of its execution paths.

Execution paths (`implementation=`), in the frozen table `IMPLEMENTATIONS`:

- `"pallas"`: the fused forward/backward kernels of `minrnn/kernels/sru` (compiled on GPU;
  interpreted on other platforms when asked for explicitly, for tests).
- `"sequential"`: the `jax.lax.scan` reference of `minrnn/kernels/sru/reference.py`,
  differentiated by JAX.

`implementation=None` takes the first path of `DEFAULT_ORDER[platform]`: the Pallas kernel on
GPU, the sequential reference elsewhere. The choice is made in Python from
`jax.default_backend()`, because `lax.platform_dependent` would still lower the Pallas kernel
for every platform. SRU is not linear in its state, so it has no parallel-in-time path.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Mapping

import jax
import jax.numpy as jnp

from minrnn.kernels import sru as kernels
from minrnn.kernels.sru import reference
from minrnn.kernels.sru.pallas_triton import KernelConfig


@dataclasses.dataclass(frozen=True)
class Implementation:
  """One execution path: its name and the JAX backends it runs compiled on (None: all)."""

  name: str
  platforms: frozenset[str] | None = None

  def supports(self, platform: str) -> bool:
    return self.platforms is None or platform in self.platforms


IMPLEMENTATIONS: Mapping[str, Implementation] = types.MappingProxyType({
    "pallas": Implementation("pallas", frozenset({"gpu", "cuda"})),
    "sequential": Implementation("sequential"),
})
DEFAULT_ORDER: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "gpu": ("pallas",), "cuda": ("pallas",)})
FALLBACK = "sequential"


def resolve(implementation: str | None = None, platform: str | None = None) -> Implementation:
  """The table entry `implementation` names, or the platform's default; a ValueError lists the
  names otherwise."""
  if implementation is not None:
    if implementation not in IMPLEMENTATIONS:
      raise ValueError(
          f"Unknown SRU implementation {implementation!r}; choose one of "
          f"{sorted(IMPLEMENTATIONS)} or None for the platform default.")
    return IMPLEMENTATIONS[implementation]
  platform = platform or jax.default_backend()
  for name in DEFAULT_ORDER.get(platform, ()):
    if IMPLEMENTATIONS[name].supports(platform):
      return IMPLEMENTATIONS[name]
  return IMPLEMENTATIONS[FALLBACK]


def _check(u, x, weight_c, bias, c0, seq_lengths, has_skip_term):
  if u.ndim != 5 or u.shape[3] not in (3, 4):
    raise ValueError(
        "sru_recurrence: u must have shape (batch, time, directions, k, hidden) with k = 3 "
        f"(highway input x given) or k = 4 (highway input in u[..., 3, :]); got {u.shape}.")
  batch, num_steps, directions, k, hidden = u.shape
  if num_steps < 1:
    raise ValueError(f"sru_recurrence: the sequence needs at least one step, got u {u.shape}.")
  if directions not in (1, 2):
    raise ValueError(f"sru_recurrence: directions (u.shape[2]) must be 1 or 2, got {directions}.")
  if not has_skip_term:
    if k != 3 or x is not None:
      raise ValueError(
          "sru_recurrence: without the highway term (has_skip_term=False) u has k = 3 "
          f"matrices and x is None; got k = {k} and x {'given' if x is not None else 'None'}.")
  elif (k == 3) != (x is not None):
    raise ValueError(
        "sru_recurrence: pass the highway input x exactly when u has k = 3 matrices; got "
        f"k = {k} and x {'given' if x is not None else 'None'}.")
  expected = {
      "x": (x, (batch, num_steps, directions, hidden)),
      "weight_c": (weight_c, (directions, 2, hidden)),
      "bias": (bias, (directions, 2, hidden)),
      "c0": (c0, (batch, directions, hidden)),
      "seq_lengths": (seq_lengths, (batch,)),
  }
  for name, (value, shape) in expected.items():
    if value is not None and tuple(value.shape) != shape:
      raise ValueError(
          f"sru_recurrence: {name} must have shape {shape} to match u {tuple(u.shape)}, got "
          f"{tuple(value.shape)}.")
  if seq_lengths is not None and not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
    raise TypeError(f"sru_recurrence: seq_lengths must be integers, got {seq_lengths.dtype}.")


def sru_recurrence(
    u: jax.Array,
    x: jax.Array | None,
    weight_c: jax.Array,
    bias: jax.Array,
    c0: jax.Array | None = None,
    seq_lengths: jax.Array | None = None,
    *,
    scale_x: float = 1.0,
    use_tanh: bool = False,
    has_skip_term: bool = True,
    reverse: bool = False,
    implementation: str | None = None,
    interpret: bool | None = None,
    config: KernelConfig | None = None,
) -> tuple[jax.Array, jax.Array]:
  """SRU's recurrence over a whole sequence, all directions at once.

  Per direction: `f = σ(u1 + v_f⊙c_{t−1} + b_f)`, `r = σ(u2 + v_r⊙c_{t−1} + b_r)`,
  `c_t = f⊙c_{t−1} + (1−f)⊙u0`, `h_t = r⊙g(c_t) + (1−r)⊙x'` with `x' = scale_x·x` (k = 3) or
  `x' = u3` (k = 4), or `h_t = r⊙g(c_t)` without the highway term; `g` is the identity or
  tanh. Direction 0 runs forward in time, direction 1 backward. Arithmetic and the state are
  float32 whatever the input dtype.

  Args:
    u: `(batch, time, directions, k, hidden)` projected inputs `[u0, u1, u2(, u3)]`, float32 or
      bfloat16. `(batch, time, directions * k * hidden)` from one matmul reshapes to this for
      free when its columns are ordered (direction, matrix, feature).
    x: `(batch, time, directions, hidden)` highway input when k = 3 and `has_skip_term`, else
      None.
    weight_c: `(directions, 2, hidden)`: `v_f`, `v_r`.
    bias: `(directions, 2, hidden)`: `b_f`, `b_r`.
    c0: `(batch, directions, hidden)` initial state, float32 (zeros if None).
    seq_lengths: optional int `(batch,)`: steps `t ≥ seq_lengths[b]` keep the state and output
      zero, so the backward direction starts at each row's last valid step.
    scale_x: constant multiplier of `x` (SRU's `rescale`).
    use_tanh: `g = tanh` (the official `use_tanh`); else `g` is the identity.
    has_skip_term: keep the highway term `(1−r)⊙x'`; without it u has k = 3 and x is None.
    reverse: run every direction the other way round in time.
    implementation: `"pallas"`, `"sequential"` or None (platform default).
    interpret: run the Pallas kernel in interpret mode (default: when not on a GPU).
    config: Pallas tuning knobs (`KernelConfig()` if None).

  Returns:
    `(h, c_last)`: `h` `(batch, time, directions, hidden)` in the inputs' dtype and the final
    state `(batch, directions, hidden)` float32 (for a backward-running direction, the state
    after its last step, at t = 0).
  """
  u = jnp.asarray(u)
  x = None if x is None else jnp.asarray(x)
  weight_c, bias = jnp.asarray(weight_c), jnp.asarray(bias)
  seq_lengths = None if seq_lengths is None else jnp.asarray(seq_lengths)
  _check(u, x, weight_c, bias, c0, seq_lengths, has_skip_term)
  name = resolve(implementation).name
  batch, num_steps, directions, _, hidden = u.shape
  if c0 is None:
    c0 = jnp.zeros((batch, directions, hidden), jnp.float32)
  c0 = jnp.asarray(c0).astype(jnp.float32)
  if name == "sequential":
    return reference.sru_recurrence(u, x, weight_c, bias, c0, seq_lengths, scale_x=scale_x,
                                    use_tanh=use_tanh, has_skip_term=has_skip_term,
                                    reverse=reverse)
  if interpret is None:
    interpret = jax.default_backend() not in ("gpu", "cuda")
  if seq_lengths is None:
    seq_lengths = jnp.full((batch,), num_steps, jnp.int32)
  if x is not None and x.dtype != u.dtype:
    x = x.astype(jnp.result_type(u.dtype, x.dtype))
    u = u.astype(x.dtype)
  params = jnp.concatenate([weight_c, bias], axis=1).astype(jnp.float32)
  return kernels.recurrence(u, x, params, c0, seq_lengths.astype(jnp.int32), float(scale_x),
                            bool(use_tanh), bool(has_skip_term), bool(reverse),
                            bool(interpret), config or KernelConfig())
