"""The linear recurrence `h_t = a_t * h_{t-1} + b_t` and the dispatcher over its execution paths.

Shapes are batch-major: `a`, `b` are `(batch, time, features)`, the initial state `h0` and the
final state are `(batch, features)`. Arithmetic and the carry are float32 whatever the input
dtype; `h` comes back in the inputs' promoted dtype, the final state in float32.

Execution paths (`implementation=`):

- `"associative"`: `jax.lax.associative_scan` on `(a, b)` pairs in linear space.
- `"log"`: the same scan in log space on `(log a, log b)` pairs combined with `logaddexp`; the
  formulation of "Were RNNs All We Needed?". Needs `a > 0`, `b > 0` and `h0 >= 0`, as the minGRU
  and minLSTM cells produce.
- `"heinsen"`: the paper's appendix listing (cumsum + logcumsumexp); a reference, with the same
  positivity requirement and larger rounding error on long sequences.
- `"sequential"`: `jax.lax.scan`, one step at a time.
- `"pallas"`: the fused GPU kernel in `kernels/linear_scan` (interpreted off GPU, for tests):
  the Triton-lowered kernels, or the Mosaic GPU ones when `minrnn.kernels.linear_scan.config.BACKEND`
  is "mosaic" (the one switch between them).
- `"pallas_fused"`: the GPU kernel that also computes the gates from a cell's pre-activations
  (`kernels/linear_scan/fused_gates.py`). It takes pre-activations, not `(a, b)`, so only a
  cell's `scan` runs it (`LinearRecurrentCell.scan`, for cells with `gates()`); `linear_scan`
  rejects it. Opt-in only: not in `DEFAULT_ORDER`.

`implementation=None` takes the first path in `DEFAULT_ORDER` that supports the platform and
dtypes: the Pallas kernel on GPU, the linear associative scan elsewhere. The choice is made in
Python because `lax.platform_dependent` would still lower the Pallas kernel for every platform.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

# (a, b, h0 | None, reverse) -> (h, h_last); a, b float32 (batch, time, features).
ScanFn = Callable[[jax.Array, jax.Array, jax.Array | None, bool], tuple[jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class Implementation:
  """One execution path: `fn` on float32 inputs, and which cases it can run."""

  fn: ScanFn
  platforms: tuple[str, ...] | None = None  # None: every platform.
  needs_positive: bool = False  # Only valid for a > 0, b > 0, h0 >= 0.

  def supports(self, platform: str) -> bool:
    return self.platforms is None or platform in self.platforms


_IMPLEMENTATIONS: dict[str, Implementation] = {}
DEFAULT_ORDER = ("pallas", "associative")
# Paths that compute a cell's gates inside the scan from its pre-activations: valid names for a
# cell's `scan`, but no `(a, b)` function to register.
FUSED_GATE_IMPLEMENTATIONS = ("pallas_fused",)


def register_implementation(
    name: str,
    fn: ScanFn,
    *,
    platforms: tuple[str, ...] | None = None,
    needs_positive: bool = False,
) -> None:
  """Adds (or replaces) an execution path selectable as `implementation=name`."""
  _IMPLEMENTATIONS[name] = Implementation(fn, platforms, needs_positive)


def implementations() -> tuple[str, ...]:
  """Names of the registered execution paths."""
  return tuple(_IMPLEMENTATIONS)


def resolve_implementation(implementation: str | None = None, platform: str | None = None) -> str:
  """The path `linear_scan` would run: `implementation` checked, or the default for `platform`."""
  if implementation is not None:
    if implementation not in _IMPLEMENTATIONS and implementation not in FUSED_GATE_IMPLEMENTATIONS:
      raise ValueError(
          f"Unknown linear-scan implementation {implementation!r}; choose one of "
          f"{sorted(_IMPLEMENTATIONS)}, a cell's fused-gate path "
          f"{list(FUSED_GATE_IMPLEMENTATIONS)}, or None for the platform default."
      )
    return implementation
  platform = platform or jax.default_backend()
  for name in DEFAULT_ORDER:
    if name in _IMPLEMENTATIONS and _IMPLEMENTATIONS[name].supports(platform):
      return name
  return "associative"


def _resolve_coefficient_path(implementation: str | None, caller: str) -> str:
  """`resolve_implementation` for callers that hold `(a, b)`: fused-gate paths are refused."""
  name = resolve_implementation(implementation)
  if name in FUSED_GATE_IMPLEMENTATIONS:
    raise ValueError(
        f"{caller}: implementation {name!r} computes a cell's gates inside the kernel from its "
        "pre-activations, so it cannot scan given coefficients (a, b). Run it through a cell "
        f"with fused gates, e.g. MinGRU(...).scan(x, implementation={name!r}), or pass "
        "'pallas' here."
    )
  return name


def _check_inputs(a, b, h0):
  a, b = jnp.asarray(a), jnp.asarray(b)
  for name, x in (("a", a), ("b", b)):
    if x.ndim != 3:
      raise ValueError(
          f"linear_scan: {name} must have shape (batch, time, features), got shape "
          f"{tuple(x.shape)}."
      )
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f"linear_scan: {name} must be a floating dtype, got {x.dtype}.")
  if a.shape != b.shape:
    raise ValueError(
        f"linear_scan: a and b must have the same shape, got {tuple(a.shape)} and "
        f"{tuple(b.shape)}."
    )
  if h0 is not None:
    h0 = jnp.asarray(h0)
    expected = (a.shape[0], a.shape[2])
    if tuple(h0.shape) != expected:
      raise ValueError(
          f"linear_scan: h0 must have shape (batch, features) = {expected}, got "
          f"{tuple(h0.shape)}."
      )
  return a, b, h0


def linear_scan(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array | None = None,
    *,
    reverse: bool = False,
    implementation: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Computes `h_t = a_t * h_{t-1} + b_t` over the time axis.

  Args:
    a: `(batch, time, features)` decay coefficients, any float dtype.
    b: `(batch, time, features)` inputs, same shape as `a`.
    h0: optional `(batch, features)` initial state (zeros if None).
    reverse: run from the last step to the first (`h_t = a_t * h_{t+1} + b_t`).
    implementation: an execution path name (see the module docstring) or None for the default.

  Returns:
    `(h, h_last)`: all states `(batch, time, features)` in the inputs' promoted dtype, and the
    final state `(batch, features)` in float32 (at `t = 0` when `reverse`).
  """
  a, b, h0 = _check_inputs(a, b, h0)
  name = _resolve_coefficient_path(implementation, "linear_scan")
  out_dtype = jnp.result_type(a.dtype, b.dtype)
  h0 = None if h0 is None else h0.astype(jnp.float32)
  h, h_last = _IMPLEMENTATIONS[name].fn(
      a.astype(jnp.float32), b.astype(jnp.float32), h0, reverse
  )
  return h.astype(out_dtype), h_last.astype(jnp.float32)


def log_linear_scan(
    log_a: jax.Array,
    log_b: jax.Array,
    log_h0: jax.Array | None = None,
    *,
    reverse: bool = False,
    implementation: str | None = "log",
) -> tuple[jax.Array, jax.Array]:
  """`linear_scan` for callers that hold logarithms: returns `(log h, log h_last)`.

  Same shapes as `linear_scan`; `log_h0` is the log of a positive initial state. The `"log"`
  and `"heinsen"` paths work on the logs directly; any other path exponentiates, scans in
  linear space and takes the log of the result.
  """
  log_a, log_b, log_h0 = _check_inputs(log_a, log_b, log_h0)
  name = _resolve_coefficient_path(implementation, "log_linear_scan")
  out_dtype = jnp.result_type(log_a.dtype, log_b.dtype)
  log_a = log_a.astype(jnp.float32)
  log_b = log_b.astype(jnp.float32)
  if name in _LOG_NATIVE:
    if log_h0 is not None:
      log_b = _fold_initial(log_a, log_b, log_h0.astype(jnp.float32), reverse, jnp.logaddexp,
                            jnp.add)
    log_h = _LOG_NATIVE[name](log_a, log_b, reverse)
  else:
    h0 = None if log_h0 is None else jnp.exp(log_h0.astype(jnp.float32))
    h, _ = _IMPLEMENTATIONS[name].fn(jnp.exp(log_a), jnp.exp(log_b), h0, reverse)
    log_h = jnp.log(h)
  log_h_last = log_h[:, 0] if reverse else log_h[:, -1]
  return log_h.astype(out_dtype), log_h_last


def _fold_initial(a, b, h0, reverse, add=jnp.add, mul=jnp.multiply):
  """Folds `h0` into the first step's input: `b_0 <- a_0 * h0 + b_0` (the last step if reverse)."""
  index = -1 if reverse else 0
  return b.at[:, index].set(add(mul(a[:, index], h0), b[:, index]))


def _last(h, reverse):
  return h[:, 0] if reverse else h[:, -1]


def _associative(a, b, h0, reverse):
  if h0 is not None:
    b = _fold_initial(a, b, h0, reverse)

  def combine(earlier, later):
    a1, b1 = earlier
    a2, b2 = later
    return a1 * a2, a2 * b1 + b2

  _, h = jax.lax.associative_scan(combine, (a, b), reverse=reverse, axis=1)
  return h, _last(h, reverse)


def _log_scan(log_a, log_b, reverse):
  def combine(earlier, later):
    la1, lb1 = earlier
    la2, lb2 = later
    return la1 + la2, jnp.logaddexp(la2 + lb1, lb2)

  _, log_h = jax.lax.associative_scan(combine, (log_a, log_b), reverse=reverse, axis=1)
  return log_h


def _heinsen_scan(log_a, log_b, reverse):
  if reverse:
    return jnp.flip(_heinsen_scan(jnp.flip(log_a, 1), jnp.flip(log_b, 1), False), 1)
  a_star = jnp.cumsum(log_a, axis=1)
  return a_star + jax.lax.cumlogsumexp(log_b - a_star, axis=1)


_LOG_NATIVE = {"log": _log_scan, "heinsen": _heinsen_scan}


def _via_logs(log_scan):
  def fn(a, b, h0, reverse):
    if h0 is not None:
      b = _fold_initial(a, b, h0, reverse)
    h = jnp.exp(log_scan(jnp.log(a), jnp.log(b), reverse))
    return h, _last(h, reverse)

  return fn


def _sequential(a, b, h0, reverse):
  if h0 is None:
    # Derived from `a` so that under shard_map the zeros vary across devices as `a` does.
    h0 = jnp.zeros_like(a[:, 0])

  def step(h, ab):
    a_t, b_t = ab
    h = a_t * h + b_t
    return h, h

  h_last, h = jax.lax.scan(
      step, h0, (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)), reverse=reverse
  )
  return jnp.swapaxes(h, 0, 1), h_last


def _pallas(a, b, h0, reverse):
  # Imported on first use: the kernel package pulls in Pallas, which CPU-only users never need.
  from minrnn.kernels.linear_scan import scan as pallas_scan

  return pallas_scan(a, b, h0, reverse=reverse)


register_implementation("associative", _associative)
register_implementation("log", _via_logs(_log_scan), needs_positive=True)
register_implementation("heinsen", _via_logs(_heinsen_scan), needs_positive=True)
register_implementation("sequential", _sequential)
register_implementation("pallas", _pallas, platforms=("gpu", "cuda"))
