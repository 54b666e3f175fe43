"""The linear recurrence `h_t = a_t * h_{t-1} + b_t` and its one table of execution paths.

Shapes are batch-major: `a`, `b` are `(batch, time, features)`, the initial state `h0` and the
final state are `(batch, features)`. Arithmetic and the carry are float32 whatever the input
dtype; `h` comes back in the inputs' promoted dtype, the final state in float32.

Execution paths (`implementation=`), in the frozen table `IMPLEMENTATIONS`:

- `"associative"`: `jax.lax.associative_scan` on `(a, b)` pairs in linear space.
- `"log"`: the same scan in log space on `(log a, log b)` pairs combined with `logaddexp`; the
  formulation of "Were RNNs All We Needed?". Needs `a > 0`, `b > 0` and `h0 >= 0`, as the minGRU
  and minLSTM cells produce.
- `"heinsen"`: the paper's appendix listing (cumsum + logcumsumexp); a reference, with the same
  positivity requirement and larger rounding error on long sequences.
- `"sequential"`: `jax.lax.scan`, one step at a time.
- `"pallas_triton"`: the fused Pallas kernels of `minrnn/kernels/linear_scan`, lowered through
  Triton (interpreted off GPU, for tests). `"pallas"` is its alias: the Pallas kernel a GPU runs
  unless told otherwise.
- `"pallas_mosaic"`: the Mosaic GPU kernels (Hopper: bulk copies of time tiles through shared
  memory), same contract (run in JAX's Mosaic GPU interpreter off GPU).
- `"pallas_fused"`: the Pallas kernel that also computes the gates from a cell's
  pre-activations (`minrnn/kernels/linear_scan/fused_gates.py`); only a cell's `scan` can run it
  (its inputs are pre-activations, not `(a, b)`). Opt-in: in no default order.
- `"sequence_parallel"`: time sharded over a device mesh (`minrnn.ops.sequence_parallel`). It
  needs the mesh, so it is selected by passing a `SequenceParallel(mesh, axis_name, ...)` where
  a name is expected; the bare name is refused with that advice.

What each path scans is its `Inputs` kind; a cell resolves the path once (`resolve`) and hands
it the matching inputs. `implementation=None` takes the first path of `DEFAULT_ORDER[platform]`:
the Triton kernel on GPU, the linear associative scan elsewhere. The choice is made in Python
because `lax.platform_dependent` would still lower the Pallas kernel for every platform.
"""

from __future__ import annotations

import dataclasses
import enum
import types
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from minrnn.ops import sequence_parallel
from minrnn.ops.sequence_parallel import SequenceParallel

# (a, b, h0 | None, reverse) -> (h, h_last); a, b float32 (batch, time, features).
ScanFn = Callable[[jax.Array, jax.Array, jax.Array | None, bool], tuple[jax.Array, jax.Array]]
# (log_a, log_b, reverse) -> log h, float32 (batch, time, features).
LogScanFn = Callable[[jax.Array, jax.Array, bool], jax.Array]


class Inputs(enum.Enum):
  """What an execution path scans."""

  COEFFICIENTS = "coefficients"  # (a, b) in linear space.
  LOGS = "logs"  # (log a, log b): needs a > 0, b > 0 and h0 >= 0.
  GATES = "gates"  # A cell's pre-activations and its elementwise map to (a, b).


@dataclasses.dataclass(frozen=True)
class Implementation:
  """One execution path and what it supports.

  Attributes:
    name: the name configs and calls select it by.
    inputs: what it scans (see `Inputs`).
    platforms: JAX backends it runs compiled on (None: every backend). Any path runs anywhere
      when named explicitly (Pallas kernels then run interpreted); the default order only picks
      paths compiled for the platform.
    scan: `(a, b, h0, reverse) -> (h, h_last)` on float32 coefficients; for `LOGS` paths the
      log-space scan is `log_scan`, and `scan` exponentiates around it.
    log_scan: for `LOGS` paths, `(log_a, log_b, reverse) -> log h`.
    mesh: for `"sequence_parallel"`, the `SequenceParallel` spec it was resolved with.
  """

  name: str
  inputs: Inputs
  platforms: frozenset[str] | None = None
  scan: ScanFn | None = None
  log_scan: LogScanFn | None = None
  mesh: SequenceParallel | None = None

  def supports(self, platform: str) -> bool:
    return self.platforms is None or platform in self.platforms


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


def _pallas_triton(a, b, h0, reverse):
  # Imported on first use: the kernel package pulls in Pallas, which CPU-only users never need.
  from minrnn.kernels.linear_scan import linear_scan as kernel
  return kernel(a, b, h0, reverse=reverse)


def _pallas_mosaic(a, b, h0, reverse):
  from minrnn.kernels.linear_scan import mosaic_linear_scan as kernel
  return kernel(a, b, h0, reverse=reverse)


_GPU = frozenset({"gpu", "cuda"})

IMPLEMENTATIONS: Mapping[str, Implementation] = types.MappingProxyType({
    "associative": Implementation("associative", Inputs.COEFFICIENTS, scan=_associative),
    "log": Implementation("log", Inputs.LOGS, scan=_via_logs(_log_scan), log_scan=_log_scan),
    "heinsen": Implementation("heinsen", Inputs.LOGS, scan=_via_logs(_heinsen_scan),
                              log_scan=_heinsen_scan),
    "sequential": Implementation("sequential", Inputs.COEFFICIENTS, scan=_sequential),
    "pallas_triton": Implementation("pallas_triton", Inputs.COEFFICIENTS, _GPU,
                                    scan=_pallas_triton),
    "pallas_mosaic": Implementation("pallas_mosaic", Inputs.COEFFICIENTS, _GPU,
                                    scan=_pallas_mosaic),
    "pallas_fused": Implementation("pallas_fused", Inputs.GATES, _GPU),
    "sequence_parallel": Implementation("sequence_parallel", Inputs.COEFFICIENTS),
})
# Names that stand for a table entry: "pallas" is the Pallas kernel a GPU runs by default (the
# Triton one until the Mosaic GPU kernel is measured faster; kernels/linear_scan/NOTES.md).
ALIASES: Mapping[str, str] = types.MappingProxyType({"pallas": "pallas_triton"})
# The first path that supports the platform wins; other platforms use "associative".
DEFAULT_ORDER: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "gpu": ("pallas_triton", "associative"),
    "cuda": ("pallas_triton", "associative"),
})
FALLBACK = "associative"

# A path as configs and calls name it: a table name or alias, a sequence-parallel spec, or None
# (the platform's default).
ImplementationName = str | SequenceParallel | None


def resolve(implementation: ImplementationName = None, platform: str | None = None
            ) -> Implementation:
  """The table entry `implementation` selects, or the platform's default.

  A `SequenceParallel` spec gives the `"sequence_parallel"` entry bound to its mesh. A
  ValueError lists the valid names for anything else.
  """
  if isinstance(implementation, SequenceParallel):
    if implementation.inner is not None:
      # Checked here so that a bad name fails before tracing, with this table's message.
      _coefficient_path(implementation.inner, "SequenceParallel(inner=...)")
    entry = IMPLEMENTATIONS["sequence_parallel"]
    return dataclasses.replace(entry, mesh=implementation,
                               scan=sequence_parallel.scan_fn(implementation, linear_scan))
  if implementation is None:
    platform = platform or jax.default_backend()
    for name in DEFAULT_ORDER.get(platform, ()):
      if IMPLEMENTATIONS[name].supports(platform):
        return IMPLEMENTATIONS[name]
    return IMPLEMENTATIONS[FALLBACK]
  name = ALIASES.get(implementation, implementation)
  if name not in IMPLEMENTATIONS:
    raise ValueError(
        f"Unknown linear-scan implementation {implementation!r}; choose one of "
        f"{sorted(IMPLEMENTATIONS)} (or {sorted(ALIASES)}), or None for the platform default.")
  if name == "sequence_parallel":
    raise ValueError(
        "implementation='sequence_parallel' needs a device mesh: pass "
        "minrnn.ops.SequenceParallel(mesh, axis_name='sequence') instead of the name, or train "
        "with config.mesh.sequence > 1 (the training loop passes its mesh).")
  return IMPLEMENTATIONS[name]


def resolve_name(implementation: ImplementationName = None, platform: str | None = None) -> str:
  """The table name `resolve` picks (aliases resolved), e.g. "associative" on CPU."""
  return resolve(implementation, platform).name


def _coefficient_path(implementation: ImplementationName, caller: str) -> Implementation:
  """`resolve` for callers that hold `(a, b)`: paths that scan gates are refused."""
  entry = resolve(implementation)
  if entry.inputs is Inputs.GATES:
    raise ValueError(
        f"{caller}: implementation {entry.name!r} computes a cell's gates inside the kernel from "
        "its pre-activations, so it cannot scan given coefficients (a, b). Run it through a "
        f"cell with fused gates, e.g. MinGRU(...).scan(x, implementation={entry.name!r}), or "
        "pass 'pallas' here.")
  return entry


def _check_inputs(a, b, h0, caller):
  a, b = jnp.asarray(a), jnp.asarray(b)
  for name, x in (("a", a), ("b", b)):
    if x.ndim != 3:
      raise ValueError(
          f"{caller}: {name} must have shape (batch, time, features), got shape "
          f"{tuple(x.shape)}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f"{caller}: {name} must be a floating dtype, got {x.dtype}.")
  if a.shape != b.shape:
    raise ValueError(
        f"{caller}: a and b must have the same shape, got {tuple(a.shape)} and "
        f"{tuple(b.shape)}.")
  if h0 is not None:
    h0 = jnp.asarray(h0)
    expected = (a.shape[0], a.shape[2])
    if tuple(h0.shape) != expected:
      raise ValueError(
          f"{caller}: h0 must have shape (batch, features) = {expected}, got "
          f"{tuple(h0.shape)}.")
  return a, b, h0


def linear_scan(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array | None = None,
    *,
    reverse: bool = False,
    implementation: ImplementationName = None,
) -> tuple[jax.Array, jax.Array]:
  """Computes `h_t = a_t * h_{t-1} + b_t` over the time axis.

  Args:
    a: `(batch, time, features)` decay coefficients, any float dtype.
    b: `(batch, time, features)` inputs, same shape as `a`.
    h0: optional `(batch, features)` initial state (zeros if None).
    reverse: run from the last step to the first (`h_t = a_t * h_{t+1} + b_t`).
    implementation: a path of `IMPLEMENTATIONS` (see the module docstring), an alias, a
      `SequenceParallel` spec, or None for the platform's default.

  Returns:
    `(h, h_last)`: all states `(batch, time, features)` in the inputs' promoted dtype, and the
    final state `(batch, features)` in float32 (at `t = 0` when `reverse`).
  """
  a, b, h0 = _check_inputs(a, b, h0, "linear_scan")
  entry = _coefficient_path(implementation, "linear_scan")
  out_dtype = jnp.result_type(a.dtype, b.dtype)
  h0 = None if h0 is None else h0.astype(jnp.float32)
  h, h_last = entry.scan(a.astype(jnp.float32), b.astype(jnp.float32), h0, reverse)
  return h.astype(out_dtype), h_last.astype(jnp.float32)


def log_linear_scan(
    log_a: jax.Array,
    log_b: jax.Array,
    log_h0: jax.Array | None = None,
    *,
    reverse: bool = False,
    implementation: ImplementationName = "log",
) -> tuple[jax.Array, jax.Array]:
  """`linear_scan` for callers that hold logarithms: returns `(log h, log h_last)`.

  Same shapes as `linear_scan`; `log_h0` is the log of a positive initial state. `LOGS` paths
  work on the logs directly; any other path exponentiates, scans in linear space and takes the
  log of the result.
  """
  log_a, log_b, log_h0 = _check_inputs(log_a, log_b, log_h0, "log_linear_scan")
  entry = _coefficient_path(implementation, "log_linear_scan")
  out_dtype = jnp.result_type(log_a.dtype, log_b.dtype)
  log_a = log_a.astype(jnp.float32)
  log_b = log_b.astype(jnp.float32)
  if entry.inputs is Inputs.LOGS:
    if log_h0 is not None:
      log_b = _fold_initial(log_a, log_b, log_h0.astype(jnp.float32), reverse, jnp.logaddexp,
                            jnp.add)
    log_h = entry.log_scan(log_a, log_b, reverse)
  else:
    h0 = None if log_h0 is None else jnp.exp(log_h0.astype(jnp.float32))
    h, _ = entry.scan(jnp.exp(log_a), jnp.exp(log_b), h0, reverse)
    log_h = jnp.log(h)
  return log_h.astype(out_dtype), _last(log_h, reverse)


def describe() -> list[dict[str, Any]]:
  """The table as rows (name, inputs, compiled platforms), for documentation and benchmarks."""
  return [{"name": e.name, "inputs": e.inputs.value,
           "platforms": "all" if e.platforms is None else ",".join(sorted(e.platforms))}
          for e in IMPLEMENTATIONS.values()]
