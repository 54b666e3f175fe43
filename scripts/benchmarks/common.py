"""What the suites share: a case (its result record and how to build its timed function), the
shapes and settings of a run, and timing the JAX cases of one process.

A suite is a generator of `Case`s. `build()` returns `(fn, abstract, arg_sets)`: a jitted `fn`,
the `jax.ShapeDtypeStruct`s of its arguments (compilation runs ahead of timing, on threads),
and a factory of the argument sets that timing rotates over. A case whose `build` is None is
already decided (skipped, unavailable) and only reported.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import time
from typing import Any, Callable, Iterable

from minrnn.kernels import benchmarking

# (batch, features) of the main and the wide cases.
MAIN_SHAPE = (64, 256)
WIDE_SHAPE = (8, 1024)
# The dry run: tiny shapes whose Pallas kernels run interpreted on a CPU in milliseconds.
DRY_RUN_SHAPE = (2, 128)
DRY_RUN_T = "16"

Build = Callable[[], tuple[Callable, list, Callable[[], list]]]


@dataclasses.dataclass
class Case:
  """A record to fill and how to build its timed function (None: nothing to time)."""

  record: benchmarking.Record
  build: Build | None = None


def ints(text: str) -> list[int]:
  return [int(t) for t in text.split(",") if t]


def names(text: str | None) -> list[str]:
  return [t.strip() for t in (text or "").split(",") if t.strip()]


def shapes(args) -> list[tuple[int, int, int]]:
  """(batch, time, features) of every case: the main shape at every `--T`, the wide one at
  every `--wide-T`."""
  out = [(args.batch, t, args.features) for t in ints(args.T)]
  return out + [(WIDE_SHAPE[0], t, WIDE_SHAPE[1]) for t in ints(args.wide_T)]


def platform(args) -> str:
  """The platform whose cases the run times: a dry run rehearses a GPU's (its Pallas kernels
  run interpreted)."""
  import jax

  return "gpu" if args.dry_run else jax.default_backend()


def interpret() -> bool:
  """Whether kernels called directly must run in interpret mode (anywhere but on a GPU)."""
  import jax

  return jax.default_backend() != "gpu"


def failure(exc: BaseException) -> str:
  message = " ".join(str(exc).split())[:160]
  return f"failed: {type(exc).__name__}: {message}"


def num_sets(args, bytes_per_set: int) -> int:
  """Input sets to rotate over: enough to defeat the L2 cache; one in a dry run."""
  return 1 if args.dry_run else benchmarking.num_input_sets(bytes_per_set)


def abstract(tree: Any) -> Any:
  import jax

  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def with_mode(fn: Callable, mode: str, num_primals: int) -> Callable:
  """`fn(*primals)` as the jitted case of `mode`: "fwd" calls it; "fwd+bwd" also pulls the
  cotangent (the argument after the primals) back to every primal."""
  import jax

  if mode == "fwd":
    return jax.jit(lambda *args: fn(*args[:num_primals]))

  def fwd_bwd(*args):
    _, vjp = jax.vjp(fn, *args[:num_primals])
    return vjp(args[num_primals])

  return jax.jit(fwd_bwd)


def timing(args, suite: str) -> dict[str, Any]:
  """`time_jax` settings: one short repetition in a dry run (no timing is asserted there)."""
  if args.dry_run:
    return dict(warmup=1, min_reps=1, max_reps=1, target_s=0.0)
  return dict(target_s=0.1 if suite == "tune" else 0.2)


def describe(record: benchmarking.Record) -> str:
  value = record.ms if record.ms is not None else record.status
  return (f"{record.suite:6s} {record.op:20s} {record.impl:22s} {record.mode:7s} "
          f"{record.dtype:8s} B={record.batch:<3d} T={record.time:<6d} D={record.features:<5d} "
          f"{value}")


class Writer:
  """Appends JSON lines for the parent process: planned cases first, then their results."""

  def __init__(self, path: str):
    self._file = open(path, "a")

  def write(self, kind: str, record: benchmarking.Record) -> None:
    self._file.write(json.dumps({kind: record.to_json()}) + "\n")
    self._file.flush()


def _compile(case: Case):
  if case.build is None:
    return None
  try:
    fn, shapes_, arg_sets = case.build()
    return fn.lower(*shapes_).compile(), arg_sets
  except Exception as exc:  # Reported per case; the other cases still run.
    return exc


def run_jax(args, cases: Iterable[Case], writer: Writer) -> None:
  """Compiles every case (on threads), then times them one by one until the deadline."""
  # lax.scan takes 0.1-0.2 s a call at T=4096: last, so a time budget cuts it first.
  cases = sorted(cases, key=lambda case: "sequential" in case.record.impl
                 or "lax.scan" in case.record.impl)
  for case in cases:
    writer.write("planned", case.record)
  # Compilation dominates on a fresh machine and runs on the CPU: overlap it across threads,
  # and finish it before timing so that no compile thread competes with the timed dispatch.
  with concurrent.futures.ThreadPoolExecutor(args.compile_threads) as pool:
    compiled_cases = list(pool.map(_compile, cases))
  print(f"compiled {len(cases)} cases", flush=True)
  for case, compiled in zip(cases, compiled_cases):
    record = case.record
    if compiled is not None and time.time() > args.deadline:
      record.status = "skipped: out of the run's time budget"
    elif isinstance(compiled, Exception):
      record.status = failure(compiled)
    elif compiled is not None:
      fn, arg_sets = compiled
      try:
        inputs = arg_sets()
        record.ms = benchmarking.time_jax(fn, inputs, **timing(args, record.suite))
        del inputs
      except Exception as exc:
        record.status = failure(exc)
    writer.write("result", record)
    print(describe(record), flush=True)
