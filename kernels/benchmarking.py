"""Benchmark harness for GPU kernels written in JAX or PyTorch.

Small on purpose: the runner (`scripts/benchmark.py`) builds the cases from each op's
`benchmark.py` beside its kernels, times them with the functions here and hands the records to
`write_results`.

Timing (`time_jax`, `time_torch`):
  - warm-up calls first (compilation, autotuning, handle creation stay out of the numbers);
  - each repetition runs `inner` back-to-back calls between two device synchronisations and
    divides by `inner`, so launch latency overlaps with device work as in a training loop;
  - inputs rotate among several sets when one set would fit in L2 (`num_input_sets`), so the
    cache does not flatter small sizes;
  - the reported time is the median over repetitions, in milliseconds.
  `time_jax` takes a jitted (or AOT-compiled) function; `time_torch` times with CUDA events.

Memory floor (`copy_bandwidth`, `copy_bandwidth_torch`, `floor_ms`): the device's bandwidth is
measured, not taken from a datasheet: one elementwise pass `y = x + 1` over a 1 GiB float32 array
in XLA, and PyTorch's device-to-device copy of the same size (bytes read plus bytes written over
the time); the benchmark takes the larger, which gives the smaller, stricter floor. A kernel's floor is the bytes it must move at that bandwidth, and
`Record.pct_floor` is floor / measured time: 100% means no memory-bound version can be faster.

Results (`Record`, `environment`, `write_results`, `load_results`, `markdown_table`, `plot`):
  one `Record` per case (also for peers that could not be installed or crashed: `status` says
  why), and `write_results(records, meta, prefix)` writes `prefix.json`, `prefix.md` and
  `prefix.png` with the GPU's name and the library versions from `environment()`. Results of
  several runs are merged with `load_results(paths)`.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import math
import pathlib
import platform
import statistics
import time
from typing import Any, Callable, Iterable, Sequence

L2_BYTES = 50 * 2**20  # H100 L2; inputs are rotated until they exceed twice this.


@dataclasses.dataclass
class Record:
  """One benchmark case and its outcome.

  `ms` is the median time per call in milliseconds (None unless `status == "ok"`); `floor_ms`
  the memory floor of the case; `status` is "ok", or a short reason ("unavailable: ...",
  "failed: ...", "crashed: ...", "skipped: ...").
  """

  suite: str
  op: str
  impl: str
  framework: str
  mode: str
  dtype: str
  batch: int
  time: int
  features: int
  ms: float | None = None
  floor_ms: float | None = None
  status: str = "ok"
  note: str = ""

  @property
  def pct_floor(self) -> float | None:
    if self.ms is None or self.floor_ms is None:
      return None
    return 100.0 * self.floor_ms / self.ms

  def key(self) -> tuple:
    return (self.suite, self.op, self.impl, self.mode, self.dtype, self.batch, self.time,
            self.features)

  def to_json(self) -> dict[str, Any]:
    return {**dataclasses.asdict(self), "pct_floor": self.pct_floor}

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> "Record":
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in fields})


def num_input_sets(bytes_per_set: int, max_sets: int = 4) -> int:
  """How many input sets to rotate so that their total exceeds twice the L2 cache."""
  return max(1, min(max_sets, math.ceil(2 * L2_BYTES / max(bytes_per_set, 1))))


def _median_time(run: Callable[[int], Any], sync: Callable[[Any], None], num_sets: int,
                 *, warmup: int, min_reps: int, max_reps: int, target_s: float) -> float:
  out = None
  for i in range(warmup):
    out = run(i % num_sets)
  sync(out)
  # Size the inner loop so that one repetition is long next to the host's clock and launch.
  start = time.perf_counter()
  sync(run(0))
  single = max(time.perf_counter() - start, 1e-6)
  inner = max(1, min(100, int(2e-3 / single)))
  reps = max(min_reps, min(max_reps, int(target_s / (single * inner))))
  times = []
  for _ in range(reps):
    sync(out)
    start = time.perf_counter()
    for i in range(inner):
      out = run(i % num_sets)
    sync(out)
    times.append((time.perf_counter() - start) / inner)
  return 1e3 * statistics.median(times)


def time_jax(fn: Callable, arg_sets: Sequence[tuple], *, warmup: int = 3, min_reps: int = 5,
             max_reps: int = 50, target_s: float = 0.3) -> float:
  """Median milliseconds per call of `fn(*args)`, rotating over `arg_sets` (lists of arrays)."""
  import jax

  def sync(out):
    if out is not None:
      jax.block_until_ready(out)

  return _median_time(lambda i: fn(*arg_sets[i]), sync, len(arg_sets), warmup=warmup,
                      min_reps=min_reps, max_reps=max_reps, target_s=target_s)


def time_torch(fn: Callable, arg_sets: Sequence[tuple], *, warmup: int = 3, min_reps: int = 5,
               max_reps: int = 50, target_s: float = 0.3) -> float:
  """Median milliseconds per call of `fn(*args)` on a CUDA device, timed with CUDA events."""
  import torch

  num_sets = len(arg_sets)
  for i in range(warmup):
    fn(*arg_sets[i % num_sets])
  torch.cuda.synchronize()
  start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
  start.record()
  fn(*arg_sets[0])
  end.record()
  end.synchronize()
  single = max(start.elapsed_time(end) * 1e-3, 1e-6)
  inner = max(1, min(100, int(2e-3 / single)))
  reps = max(min_reps, min(max_reps, int(target_s / (single * inner))))
  times = []
  for _ in range(reps):
    start.record()
    for i in range(inner):
      fn(*arg_sets[i % num_sets])
    end.record()
    end.synchronize()
    times.append(start.elapsed_time(end) / inner)
  return statistics.median(times)


def copy_bandwidth(nbytes: int = 2**30) -> float:
  """Device memory bandwidth in bytes/s: an elementwise pass over `nbytes` of float32 (XLA)."""
  import jax
  import jax.numpy as jnp

  x = jnp.ones((nbytes // 4,), jnp.float32)
  step = jax.jit(lambda x: x + 1.0)
  ms = time_jax(step, [(x,)], min_reps=10, target_s=0.5)
  del x
  return 2 * nbytes / (ms * 1e-3)


def copy_bandwidth_torch(nbytes: int = 2**30) -> float:
  """Device memory bandwidth in bytes/s of PyTorch's device-to-device `copy_` of `nbytes`."""
  import torch

  x = torch.ones(nbytes // 4, device="cuda")
  y = torch.empty_like(x)
  ms = time_torch(lambda: y.copy_(x), [()], min_reps=10, target_s=0.5)
  del x, y
  torch.cuda.empty_cache()
  return 2 * nbytes / (ms * 1e-3)


def floor_ms(num_arrays: float, elements: int, itemsize: int, bandwidth: float) -> float:
  """Time in ms to move `num_arrays` arrays of `elements` items once at `bandwidth` bytes/s."""
  return 1e3 * num_arrays * elements * itemsize / bandwidth


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def environment(packages: Iterable[str] = ()) -> dict[str, Any]:
  """The GPU's name and the versions of Python, JAX and `packages` (None if not installed)."""
  import jax

  device = jax.devices()[0]
  names = ("jax", "jaxlib", "flax", "torch", "triton", *packages)
  return {
      "device": getattr(device, "device_kind", str(device)),
      "platform": device.platform,
      "python": platform.python_version(),
      "versions": {name: _version(name) for name in dict.fromkeys(names)},
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def load_results(paths: Iterable[str | pathlib.Path]) -> tuple[list[Record], dict[str, Any]]:
  """Merges results files: later files replace earlier records of the same case."""
  merged: dict[tuple, Record] = {}
  meta: dict[str, Any] = {"runs": []}
  for path in paths:
    data = json.loads(pathlib.Path(path).read_text())
    meta["runs"].append({"file": pathlib.Path(path).name, **data["meta"]})
    for item in data["records"]:
      record = Record.from_json(item)
      merged[record.key()] = record
  return list(merged.values()), meta


def _format(record: Record) -> str:
  if record.status != "ok":
    return record.status.split(":")[0]
  pct = record.pct_floor
  return f"{record.ms:.3f}" + (f" ({pct:.0f}%)" if pct is not None else "")


FLOOR_NOTE = (
    "Median ms per call; in brackets the memory floor as a share of the time (100% = at the "
    "floor). Scan floor: 3 arrays forward, 8 forward+backward; layer floor: input and "
    "output forward (2 arrays), plus gradient in, input, output and input gradient backward "
    "(6 in all).")


def markdown_table(records: Sequence[Record], meta: dict[str, Any],
                   floor_note: str = FLOOR_NOTE) -> str:
  """One table per (op, mode, dtype, shape): a row per implementation, a column per length.
  `floor_note` says how the floors were counted."""
  lines = ["# Benchmark results", ""]
  for run in meta.get("runs", [meta]):
    versions = ", ".join(f"{k} {v}" for k, v in run.get("versions", {}).items() if v)
    lines.append(
        f"- {run.get('file', 'run')}: {run.get('device')} ({run.get('date')}); copy bandwidth "
        f"{run.get('bandwidth_tbs', float('nan')):.2f} TB/s; Python {run.get('python')}; "
        f"{versions}"
    )
  if "bandwidth_tbs" in meta:
    lines.append(f"- memory floors at {meta['bandwidth_tbs']:.2f} TB/s, the highest copy "
                 "bandwidth measured")
  lines += ["", floor_note, ""]
  groups: dict[tuple, list[Record]] = {}
  for r in records:
    groups.setdefault((r.suite, r.op, r.mode, r.dtype, r.batch, r.features), []).append(r)
  not_run: dict[tuple, list[int]] = {}
  # The recurrence alone first, then layers, then the rest; groups with no measured case are
  # only listed at the end.
  order = lambda item: (item[0][1] != "scan", item[0][1], item[0][2], item[0][3], item[0][4])
  for (suite, op, mode, dtype, batch, features), group in sorted(groups.items(), key=order):
    for r in group:
      if r.status != "ok":
        not_run.setdefault((r.status, r.op, r.impl, r.mode, r.dtype, r.batch, r.features),
                           []).append(r.time)
    if all(r.status != "ok" for r in group):
      continue
    times = sorted({r.time for r in group})
    lines.append(f"## {op}, {mode}, {dtype}, B={batch} D={features} ({suite})")
    lines.append("")
    lines.append("| implementation | " + " | ".join(f"T={t}" for t in times) + " |")
    lines.append("|---|" + "---|" * len(times))
    by_impl: dict[str, dict[int, Record]] = {}
    for r in group:
      by_impl.setdefault(r.impl, {})[r.time] = r
    for impl, row in sorted(by_impl.items()):
      cells = [_format(row[t]) if t in row else "–" for t in times]
      lines.append(f"| {impl} | " + " | ".join(cells) + " |")
    lines.append("")
  if not_run:
    lines += ["## Cases that did not run", ""]
    for (status, op, impl, mode, dtype, batch, features), ts in sorted(not_run.items()):
      where = f"{op} {mode} {dtype} B={batch} D={features} T={','.join(map(str, sorted(ts)))}"
      lines.append(f"- {impl}, {where}: {status}")
    lines.append("")
  return "\n".join(lines)


def plot(records: Sequence[Record], meta: dict[str, Any], path: str | pathlib.Path,
         panels: Sequence[tuple[str, str, str, int, int]]) -> None:
  """Writes a PNG: one log-log panel (ms against T, a line per implementation) per
  `(op, mode, dtype, batch, features)` in `panels`."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
  for ax, (op, mode, dtype, batch, features) in zip(axes[0], panels):
    chosen = [r for r in records if (r.op, r.mode, r.dtype, r.batch, r.features) ==
              (op, mode, dtype, batch, features) and r.status == "ok"]
    for impl in sorted({r.impl for r in chosen}):
      points = sorted((r.time, r.ms) for r in chosen if r.impl == impl)
      ax.plot(*zip(*points), marker="o", label=impl)
    floors = sorted({(r.time, r.floor_ms) for r in chosen if r.floor_ms})
    if floors:
      ax.plot(*zip(*floors), "k--", label="memory floor")
    ax.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="ms per call",
           title=f"{op} {mode} {dtype} B={batch} D={features}")
    ax.grid(True, which="both", alpha=0.3)
    if chosen:
      ax.legend(fontsize=7)
  runs = meta.get("runs", [meta])
  fig.suptitle(", ".join(sorted({str(r.get("device")) for r in runs})))
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_results(records: Sequence[Record], meta: dict[str, Any], prefix: str | pathlib.Path,
                  panels: Sequence[tuple[str, str, str, int, int]] = (),
                  floor_note: str = FLOOR_NOTE) -> list[pathlib.Path]:
  """Writes `prefix.json` (records and meta), `prefix.md` and, if `panels`, `prefix.png`."""
  prefix = pathlib.Path(prefix)
  prefix.parent.mkdir(parents=True, exist_ok=True)
  written = [prefix.with_suffix(".json"), prefix.with_suffix(".md")]
  written[0].write_text(json.dumps(
      {"meta": meta, "records": [r.to_json() for r in records]}, indent=1))
  written[1].write_text(markdown_table(records, meta, floor_note))
  # Panels without a single measured case are left out rather than drawn empty.
  panels = [p for p in panels if any(
      (r.op, r.mode, r.dtype, r.batch, r.features) == tuple(p) and r.status == "ok"
      for r in records)]
  if panels:
    written.append(prefix.with_suffix(".png"))
    plot(records, meta, written[-1], panels)
  return written
