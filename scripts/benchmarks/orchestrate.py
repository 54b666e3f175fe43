"""The parent process of a run: measures the copy bandwidth, runs each group of cases in its own
process (`jax` for every JAX suite, one per peer group), sets each result's memory floor and
writes the results files."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
import time

from benchmarks import layers, peers
from benchmarks.common import failure, names
from minrnn.kernels import benchmarking
from minrnn.kernels.linear_scan import benchmark as scan_data
from minrnn.kernels.sru import benchmark as sru_data

JAX_SUITES = ("scan", "layers", "tune", "sru")
# A dry run's bandwidth comes from a small array: it only has to be a number.
DRY_RUN_BANDWIDTH_BYTES = 2**22
# Seconds a group's process may run past the run's deadline (its cases in flight, its exit).
GRACE_S = 60
RUNNER = pathlib.Path(__file__).resolve().parents[1] / "benchmark.py"


def floor_arrays(record: benchmarking.Record) -> float | None:
  """Arrays of B·T·D the record's case moves at least once (None: no floor, e.g. tuning)."""
  if record.suite == "tune":
    return None
  if record.op == "scan":
    return scan_data.FLOOR_ARRAYS.get(record.mode)
  if (record.op, record.mode) in sru_data.FLOOR_ARRAYS:
    return sru_data.FLOOR_ARRAYS[(record.op, record.mode)]
  return layers.FLOOR_ARRAYS.get(record.mode)


def apply_floors(records, bandwidth_tbs: float) -> None:
  """Sets every measured record's memory floor at `bandwidth_tbs`."""
  for record in records:
    arrays = floor_arrays(record)
    if record.status == "ok" and arrays:
      itemsize = 2 if record.dtype in ("bfloat16", "float16") else 4
      record.floor_ms = benchmarking.floor_ms(
          arrays, record.batch * record.time * record.features, itemsize, bandwidth_tbs * 1e12)


def floor_note(records) -> str:
  """The markdown's sentence on how the floors of the ops present were counted."""
  parts = []
  ops = {r.op for r in records if r.suite != "tune"}
  if "scan" in ops:
    parts.append("scan {fwd} arrays forward, {fwd+bwd} forward+backward".format_map(
        scan_data.FLOOR_ARRAYS))
  for op in (sru_data.RECURRENCE, sru_data.LAYER):
    if op in ops:
      parts.append(f"{op} {sru_data.FLOOR_ARRAYS[(op, 'fwd')]} forward, "
                   f"{sru_data.FLOOR_ARRAYS[(op, 'fwd+bwd')]} forward+backward")
  if ops - {"scan", sru_data.RECURRENCE, sru_data.LAYER, "-"}:
    parts.append("other layers: input and output forward ({fwd} arrays), plus gradient in, "
                 "input, output and input gradient backward ({fwd+bwd} in all)".format_map(
                     layers.FLOOR_ARRAYS))
  return ("Median ms per call; in brackets the memory floor as a share of the time (100% = at "
          "the floor). Floors count arrays of B·T·D moved once: " + "; ".join(parts) + ".")


def panels(records, args) -> list[tuple[str, str, str, int, int]]:
  """The PNG's panels (four at most): forward+backward (else forward) at the main shape of the
  ops minrnn ran, the scan first (float32, then bfloat16), then the others in the order they
  ran, float32 first. Peers appear in the panels of the ops they share."""
  measured = [r for r in records if r.status == "ok" and r.suite != "tune"
              and (r.batch, r.features) == (args.batch, args.features)]
  mode = "fwd+bwd" if any(r.mode == "fwd+bwd" for r in measured) else "fwd"
  first = {}
  for index, r in enumerate(measured):
    if r.framework == "jax":
      first.setdefault(r.op, index)
  keys = {(r.op, mode, r.dtype, r.batch, r.features) for r in measured
          if r.mode == mode and r.op in first}
  order = lambda key: (key[0] != "scan", key[2] != "float32", first[key[0]], key[2])
  return sorted(keys, key=order)[:4]


def bandwidth(meta, args) -> None:
  """Measures the copy bandwidth (XLA's and PyTorch's) into `meta`."""
  nbytes = DRY_RUN_BANDWIDTH_BYTES if args.dry_run else 2**30
  meta["bandwidth_xla_tbs"] = benchmarking.copy_bandwidth(nbytes) / 1e12
  if not args.dry_run:
    try:
      meta["bandwidth_torch_tbs"] = benchmarking.copy_bandwidth_torch(nbytes) / 1e12
    except Exception as exc:  # No PyTorch or no CUDA: the XLA figure alone.
      print(f"no PyTorch copy bandwidth: {failure(exc)}")
  meta["bandwidth_tbs"] = bandwidth_tbs(meta)


def bandwidth_tbs(meta) -> float:
  """The highest copy bandwidth measured: the smaller, stricter floor."""
  return max(meta.get("bandwidth_xla_tbs", 0.0), meta.get("bandwidth_torch_tbs", 0.0))


def groups(args) -> list[str]:
  suites = names(args.suites)
  out = ["jax"] if set(JAX_SUITES) & set(suites) else []
  if args.dry_run:
    return out  # No peers: they need PyTorch on a CUDA device.
  if "peers" in suites:
    out += names(args.peers)
  if "sru" in suites and not args.no_sru_peers and "sru" not in out:
    out.append("sru")
  return out


def collect(jsonl: pathlib.Path, group: str, returncode: int, stderr_tail: str, timed_out: bool):
  """The group's records (cases it never finished marked as such), or a reason it ran none."""
  planned, done = {}, {}
  if jsonl.exists():
    for line in jsonl.read_text().splitlines():
      (kind, data), = json.loads(line).items()
      record = benchmarking.Record.from_json(data)
      (planned if kind == "planned" else done)[record.key()] = record
  if not planned and (returncode != 0 or timed_out):
    reason = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else f"exit {returncode}"
    return [], f"unavailable: {reason[:200]}"
  records = []
  for key, record in planned.items():
    if key not in done:
      record.status = ("skipped: out of the run's time budget" if timed_out else
                       f"crashed: {group} process ended (exit {returncode}) before this case")
    records.append(done.get(key, record))
  return records, None


def _run_group(argv, group: str, jsonl: pathlib.Path, deadline: float):
  command = [sys.executable, str(RUNNER), *argv, "--child", group, "--jsonl", str(jsonl),
             "--deadline", str(deadline)]
  timeout = None if deadline == float("inf") else max(deadline - time.time(), 0) + GRACE_S
  try:
    proc = subprocess.run(command, stderr=subprocess.PIPE, text=True, timeout=timeout)
    return proc.returncode, proc.stderr, False
  except subprocess.TimeoutExpired as exc:
    stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    return -9, stderr, True


def orchestrate(args, argv) -> list[pathlib.Path]:
  """Runs every group of `args` and writes `<out-dir>/<prefix>.{json,md,png}`; returns them."""
  import jax

  meta = {**benchmarking.environment(peers.PACKAGES), "args": vars(args)}
  bandwidth(meta, args)
  print(f"{meta['device']}: copy bandwidth {meta['bandwidth_tbs']:.2f} TB/s", flush=True)
  jax.clear_caches()
  records, unavailable = [], []
  with tempfile.TemporaryDirectory() as tmp:
    for group in groups(args):
      if time.time() > args.deadline:
        unavailable.append((group, "skipped: out of the run's time budget"))
        continue
      jsonl = pathlib.Path(tmp) / f"{group}.jsonl"
      returncode, stderr, timed_out = _run_group(argv, group, jsonl, args.deadline)
      sys.stderr.write(stderr[-3000:])
      group_records, reason = collect(jsonl, group, returncode, stderr[-2000:], timed_out)
      records += group_records
      if reason:
        unavailable.append((group, reason))
  for group, reason in unavailable:
    records.append(benchmarking.Record("peers", "-", group, "torch", "-", "-", 0, 0, 0,
                                       status=reason))
  return write(records, meta, args)


def write(records, meta, args) -> list[pathlib.Path]:
  apply_floors(records, meta["bandwidth_tbs"])
  prefix = pathlib.Path(args.out_dir) / args.name
  written = benchmarking.write_results(records, meta, prefix,
                                       panels=panels(records, args) if args.plot else (),
                                       floor_note=floor_note(records))
  print("\n".join(str(p) for p in written))
  print_summary(records)
  return written


def print_summary(records) -> None:
  print("\nsummary (ms, % of memory floor):")
  for r in sorted(records, key=lambda r: r.key()):
    if r.suite == "tune":
      continue
    value = f"{r.ms:9.3f} {r.pct_floor or 0:5.0f}%" if r.ms is not None else r.status[:60]
    print(f"{r.op:14s} {r.mode:7s} {r.dtype:8s} B={r.batch:<3d} T={r.time:<6d} {r.impl:30s} "
          f"{value}")
  tuned = {}
  for r in records:
    if r.suite == "tune" and r.ms is not None:
      key = (r.op, r.dtype, r.batch, r.time, r.features)
      if key not in tuned or r.ms < tuned[key].ms:
        tuned[key] = r
  for key, r in sorted(tuned.items()):
    print(f"best {key}: {r.impl} {r.ms:.4f} ms")
