"""GPU benchmark of the linear scan and the minGRU / minLSTM layers against their peers.

    python scripts/benchmark.py                          # everything, results named "all"
    python scripts/benchmark.py --quick --name quick     # T in {512, 4096}, float32, no wide case
    python scripts/benchmark.py --suites scan --T 512,4096 --dtypes float32 --name scan
    python scripts/benchmark.py --suites tune --name tune  # block-shape sweep of the kernels
    python scripts/benchmark.py --suites tune --tune-kernels minGRU,minLSTM --name tune_fused
    python scripts/benchmark.py --suites tune --tune-kernels mosaic --name tune_mosaic
    python scripts/benchmark.py --merge experiments/results/benchmark_*.json

Suites: `scan` (the recurrence alone: the Pallas kernels, Triton-lowered `pallas` and Mosaic GPU
`pallas_mosaic`, `lax.associative_scan`, `lax.scan`),
`layers` (a minGRU / minLSTM layer, projection + scan, per `implementation=`, including the
fused-gate kernel `pallas_fused`), `peers` (PyTorch:
accelerated-scan, flash-linear-attention's `chunk_hgrn`, mingru-pytorch, cuDNN GRU and LSTM) and
`tune` (the Pallas kernels over a grid of block shapes). Shapes: B=64 D=256 at every `--T`, and
the wide case B=8 D=1024 at every `--wide-T`; float32 and bfloat16; forward and forward+backward.

The device's copy bandwidth is measured first and every case is reported against its memory
floor. Each group of cases runs in its own process, so a peer that crashes the device context
(or can't be imported) is recorded as such and the others still run. Results go to
`<out-dir>/benchmark_<name>.{json,md,png}`; `--merge` combines several runs into
`<out-dir>/benchmark.{json,md,png}`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import traceback

_REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO))
# JAX and PyTorch share the GPU in these processes: allocate on demand, not 75% up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from minrnn.kernels import benchmarking  # noqa: E402

MAIN_SHAPE = (64, 256)
WIDE_SHAPE = (8, 1024)
PEERS = ("accelerated-scan", "fla", "cudnn", "mingru-pytorch")
PEER_PACKAGES = ("accelerated-scan", "flash-linear-attention", "fla-core", "mingru-pytorch")
# Arrays of (batch, time, features) a case must move at least once (see kernels/benchmarking.py).
FLOOR_ARRAYS = {("scan", "fwd"): 3, ("scan", "fwd+bwd"): 8, ("layer", "fwd"): 2,
                ("layer", "fwd+bwd"): 6}
PANELS = (("scan", "fwd+bwd", "float32", 64, 256), ("scan", "fwd+bwd", "bfloat16", 64, 256),
          ("minGRU", "fwd+bwd", "float32", 64, 256), ("minLSTM", "fwd+bwd", "float32", 64, 256))
TUNE_SHAPES = ((64, 4096, 256, "float32"), (64, 4096, 256, "bfloat16"))
# The scan suite's names of the Pallas kernels -> their `minrnn.ops.linear_scan` paths.
PALLAS_BACKENDS = {"pallas": "pallas_triton", "pallas_mosaic": "pallas_mosaic"}


def _ints(text: str) -> list[int]:
  return [int(t) for t in text.split(",") if t]


def _shapes(args) -> list[tuple[int, int, int]]:
  """(batch, time, features) of every case."""
  shapes = [(MAIN_SHAPE[0], t, MAIN_SHAPE[1]) for t in _ints(args.T)]
  shapes += [(WIDE_SHAPE[0], t, WIDE_SHAPE[1]) for t in _ints(args.wide_T)]
  return shapes


class _Writer:
  """Appends JSON lines for the parent: planned cases first, then their results."""

  def __init__(self, path):
    self._file = open(path, "a")

  def write(self, kind: str, record: benchmarking.Record):
    self._file.write(json.dumps({kind: record.to_json()}) + "\n")
    self._file.flush()


def _failure(exc: BaseException) -> str:
  message = " ".join(str(exc).split())[:160]
  return f"failed: {type(exc).__name__}: {message}"


# ---------------------------------------------------------------------------------------------
# JAX cases: scan, layers, tune.


def _jax_cases(args):
  """Yields (record, build) pairs; build() -> (jitted fn, list of argument sets factory)."""
  import jax
  import jax.numpy as jnp
  from flax import nnx

  from minrnn import cells
  from minrnn.ops import linear_scan as dispatch_scan

  suites = args.suites.split(",")
  dtypes = args.dtypes.split(",")
  modes = args.modes.split(",")

  def scan_inputs(shape, dtype, seed):
    ka, kb, kc = jax.random.split(jax.random.key(seed), 3)
    a = jax.random.uniform(ka, shape, jnp.float32, 0.5, 1.0).astype(dtype)
    b = jax.random.normal(kb, shape, jnp.float32).astype(dtype)
    ct = jax.random.normal(kc, shape, jnp.float32).astype(dtype)
    return a, b, ct

  def scan_fn(impl):
    if impl in PALLAS_BACKENDS:
      return lambda a, b: dispatch_scan(a, b, implementation=PALLAS_BACKENDS[impl])[0]
    return lambda a, b: dispatch_scan(a, b, implementation=impl)[0].astype(a.dtype)

  def with_mode(fn, mode, num_primals):
    if mode == "fwd":
      return jax.jit(lambda *args: fn(*args[:num_primals]))

    def fwd_bwd(*args):
      _, vjp = jax.vjp(fn, *args[:num_primals])
      return vjp(args[num_primals])

    return jax.jit(fwd_bwd)

  if "scan" in suites:
    for impl in (*PALLAS_BACKENDS, "associative", "sequential"):
      for batch, time, features in _shapes(args):
        for dtype in dtypes:
          for mode in modes:
            record = benchmarking.Record("scan", "scan", impl, "jax", mode, dtype, batch, time,
                                         features)
            if impl == "sequential" and time > args.sequential_max_t:
              record.status = f"skipped: lax.scan beyond T={args.sequential_max_t}"
              yield record, None
              continue
            shape = (batch, time, features)

            def build(impl=impl, mode=mode, shape=shape, dtype=dtype):
              fn = with_mode(scan_fn(impl), mode, 2)
              item = jnp.dtype(dtype).itemsize
              sets = benchmarking.num_input_sets(3 * item * shape[0] * shape[1] * shape[2])
              arg_sets = lambda: [scan_inputs(shape, dtype, s) for s in range(sets)]
              abstract = [jax.ShapeDtypeStruct(shape, dtype)] * 3
              return fn, abstract, arg_sets

            yield record, build

  if "layers" in suites:
    # "pallas_fused" computes the gates inside the scan kernel; "pallas" is the plain kernel
    # with XLA's gate math around it. The paper's log-space path is the naive baseline, in
    # float32 only (it is slower anyway).
    layer_impls = {"minGRU": ("pallas_fused", "pallas", "associative", "log"),
                   "minLSTM": ("pallas_fused", "pallas", "associative", "log")}
    for op, impls in layer_impls.items():
      for impl in impls:
        for batch, time, features in _shapes(args):
          for dtype in dtypes:
            if impl == "log" and dtype != "float32":
              continue
            for mode in modes:
              record = benchmarking.Record("layers", op, impl, "jax", mode, dtype, batch, time,
                                           features)

              def build(op=op, impl=impl, mode=mode, shape=(batch, time, features),
                        dtype=dtype):
                cls = cells.MinGRU if op == "minGRU" else cells.MinLSTM
                cell = cls(shape[2], shape[2], dtype=jnp.dtype(dtype), rngs=nnx.Rngs(0))
                graphdef, params = nnx.split(cell)

                def layer(params, x):
                  return nnx.merge(graphdef, params).scan(x, implementation=impl)[1]

                fn = with_mode(layer, mode, 2)

                def arg_sets():
                  sets = benchmarking.num_input_sets(
                      2 * jnp.dtype(dtype).itemsize * shape[0] * shape[1] * shape[2])
                  out = []
                  for s in range(sets):
                    kx, kc = jax.random.split(jax.random.key(s))
                    x = jax.random.normal(kx, shape, jnp.float32).astype(dtype)
                    out.append((params, x, jax.random.normal(kc, shape).astype(dtype)))
                  return out

                abstract = [jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype),
                                         params),
                            jax.ShapeDtypeStruct(shape, dtype), jax.ShapeDtypeStruct(shape, dtype)]
                return fn, abstract, arg_sets

              yield record, build

  if "tune" in suites:
    kernels = args.tune_kernels.split(",")
    if "scan" in kernels:
      yield from _tune_cases(scan_inputs, "triton")
    if "mosaic" in kernels:
      yield from _tune_cases(scan_inputs, "mosaic")
    for op in ("minGRU", "minLSTM"):
      if op in kernels:
        yield from _tune_fused_cases(op)


def _tune_configs():
  from minrnn.kernels.linear_scan import BlockConfig

  # One feature per thread: two chunks of loads (computed and in flight) fit in registers.
  for block_d in (32, 64, 128, 256):
    for chunk in (8, 16, 32):
      yield BlockConfig(block_d=block_d, chunk=chunk, num_warps=block_d // 32)


def _mosaic_tune_configs(kernel, dtype):
  """Mosaic GPU tiles that fit shared memory (forward 3 tiles per stage, backward 5)."""
  import jax.numpy as jnp

  from minrnn.kernels.linear_scan import MosaicConfig

  tiles = 3 if kernel == "forward" else 5
  for block_d in (128, 256):
    for chunk in (8, 16, 32, 64):
      for stages in (2, 3, 4):
        config = MosaicConfig(block_d=block_d, chunk=chunk, stages=stages)
        if config.fits_smem(tiles, jnp.dtype(dtype).itemsize):
          yield config


def _config_name(config) -> str:
  from minrnn.kernels.linear_scan import MosaicConfig

  if isinstance(config, MosaicConfig):
    return f"mosaic_d{config.block_d}_c{config.chunk}_s{config.stages}"
  return f"d{config.block_d}_c{config.chunk}_w{config.num_warps}_s{config.num_stages}"


def _tune_cases(scan_inputs, backend):
  """The forward and backward kernels of `backend` ("triton" or "mosaic") over their tiles."""
  import jax
  import jax.numpy as jnp

  from minrnn.kernels.linear_scan import pallas_mosaic, pallas_triton

  module = pallas_triton if backend == "triton" else pallas_mosaic
  prefix = "scan" if backend == "triton" else "scan-mosaic"
  for batch, time, features, dtype in TUNE_SHAPES:
    shape = (batch, time, features)
    for kernel in ("forward", "backward"):
      configs = (_tune_configs() if backend == "triton"
                 else _mosaic_tune_configs(kernel, dtype))
      for config in configs:
        record = benchmarking.Record("tune", f"{prefix}-{kernel}-kernel", _config_name(config),
                                     "jax", "fwd" if kernel == "forward" else "bwd", dtype,
                                     batch, time, features)

        def build(kernel=kernel, shape=shape, dtype=dtype, config=config):
          zeros = lambda a: jnp.zeros((a.shape[0], a.shape[2]), jnp.float32)
          # The kernels alone, on shapes their tiles divide (TUNE_SHAPES are).
          if kernel == "forward":
            fn = jax.jit(lambda a, b, ct: module._forward(
                a, b, zeros(a), False, False, config))
          else:
            fn = jax.jit(lambda a, h, dh: module._backward(
                a, h, dh, zeros(a), zeros(a), False, False, config))
          sets = benchmarking.num_input_sets(3 * jnp.dtype(dtype).itemsize * shape[0] * shape[1]
                                             * shape[2])
          arg_sets = lambda: [scan_inputs(shape, dtype, s) for s in range(sets)]
          return fn, [jax.ShapeDtypeStruct(shape, dtype)] * 3, arg_sets

        yield record, build


def _tune_fused_cases(op):
  """The fused-gate kernels of `op`'s gates over the block-shape grid; inputs (pre, h, dh)."""
  import functools

  import jax
  import jax.numpy as jnp

  from minrnn.kernels.linear_scan import fused_gates
  from minrnn.cells import mingru, minlstm

  gates, num_inputs = ((mingru.gate_coefficients, 2) if op == "minGRU"
                       else (functools.partial(minlstm.gate_coefficients, normalize=True), 3))

  def inputs(shape, dtype, seed):
    kp, kh, kd = jax.random.split(jax.random.key(seed), 3)
    batch, time, features = shape
    pre = jax.random.normal(kp, (batch, time, num_inputs, features), jnp.float32).astype(dtype)
    h = jax.random.normal(kh, shape, jnp.float32).astype(dtype)
    return pre, h, jax.random.normal(kd, shape, jnp.float32).astype(dtype)

  for batch, time, features, dtype in TUNE_SHAPES:
    shape = (batch, time, features)
    for config in _tune_configs():
      for kernel in ("forward", "backward"):
        record = benchmarking.Record("tune", f"{op}-fused-{kernel}-kernel", _config_name(config),
                                     "jax", "fwd" if kernel == "forward" else "bwd", dtype,
                                     batch, time, features)

        def build(kernel=kernel, shape=shape, dtype=dtype, config=config):
          zeros = lambda h: jnp.zeros((h.shape[0], h.shape[2]), jnp.float32)
          if kernel == "forward":
            fn = jax.jit(lambda pre, h, dh: fused_gates._forward(
                pre, zeros(h), None, gates, False, False, config))
          else:
            fn = jax.jit(lambda pre, h, dh: fused_gates._backward(
                pre, h, dh, zeros(h), zeros(h), None, gates, False, False, config))
          sets = benchmarking.num_input_sets((num_inputs + 2) * jnp.dtype(dtype).itemsize
                                             * shape[0] * shape[1] * shape[2])
          arg_sets = lambda: [inputs(shape, dtype, s) for s in range(sets)]
          abstract = [jax.ShapeDtypeStruct(shape[:2] + (num_inputs, shape[2]), dtype),
                      jax.ShapeDtypeStruct(shape, dtype), jax.ShapeDtypeStruct(shape, dtype)]
          return fn, abstract, arg_sets

        yield record, build


def _run_jax(args, writer):
  import jax

  # lax.scan takes 0.1-0.2 s a call at T=4096: last, so a time budget cuts it rather than the
  # layers.
  cases = sorted(_jax_cases(args), key=lambda case: case[0].impl == "sequential")
  for record, _ in cases:
    writer.write("planned", record)

  def compile_case(item):
    record, build = item
    if build is None:
      return None
    try:
      fn, abstract, arg_sets = build()
      return fn.lower(*abstract).compile(), arg_sets
    except Exception as exc:  # Reported per case; the other cases still run.
      return exc

  # Compilation dominates on a fresh machine and runs on the CPU: overlap it across threads,
  # and finish it before timing so that no compile thread competes with the timed dispatch.
  with concurrent.futures.ThreadPoolExecutor(args.compile_threads) as pool:
    compiled_cases = list(pool.map(compile_case, cases))
  print(f"compiled {len(cases)} cases", flush=True)
  for (record, _), compiled in zip(cases, compiled_cases):
    if compiled is not None and time.time() > args.deadline:
      record.status = "skipped: out of the run's time budget"
    elif isinstance(compiled, Exception):
      record.status = _failure(compiled)
    elif compiled is not None:
      fn, arg_sets = compiled
      try:
        inputs = arg_sets()
        record.ms = benchmarking.time_jax(
            fn, inputs, target_s=0.1 if record.suite == "tune" else 0.2)
        del inputs
      except Exception as exc:
        record.status = _failure(exc)
    writer.write("result", record)
    print(f"{record.suite:6s} {record.op:20s} {record.impl:14s} {record.mode:7s} "
          f"{record.dtype:8s} B={record.batch:<3d} T={record.time:<6d} D={record.features:<5d} "
          f"{record.ms if record.ms is not None else record.status}", flush=True)


# ---------------------------------------------------------------------------------------------
# PyTorch peers.


def _torch_cases(args, peer):
  import torch

  dtypes = args.dtypes.split(",")
  modes = args.modes.split(",")
  dev = "cuda"

  def tensors(shape, dtype, seed, layout="btd"):
    gen = torch.Generator(device=dev).manual_seed(seed)
    if layout == "bdt":
      shape = (shape[0], shape[2], shape[1])
    a = (torch.rand(shape, device=dev, generator=gen) * 0.5 + 0.5).to(dtype)
    b = torch.randn(shape, device=dev, generator=gen).to(dtype)
    ct = torch.randn(shape, device=dev, generator=gen).to(dtype)
    return a, b, ct

  def timed(fn, mode, num_primals, make_sets):
    """fn(*primals) -> output; returns a callable over (primals..., cotangent)."""
    if mode == "fwd":
      def run(*args):
        with torch.no_grad():
          return fn(*args[:num_primals])
      return run, make_sets

    def run(*args):
      primals, ct = args[:num_primals], args[num_primals]
      out = fn(*primals)
      inputs = [p for p in primals if p.requires_grad]
      return torch.autograd.grad(out, inputs + extra_params(fn), ct)
    return run, make_sets

  def extra_params(fn):
    return list(getattr(fn, "params", []))

  def scan_peer(impl, scan, layout):
    for batch, time, features in _shapes(args):
      # bf16 last: a peer that corrupts the device context there should not take float32 along.
      for dtype in sorted(dtypes, key=lambda d: d != "float32"):
        for mode in modes:
          record = benchmarking.Record("peers", "scan", impl, "torch", mode, dtype, batch, time,
                                       features)

          def build(mode=mode, shape=(batch, time, features), dtype=dtype):
            tdtype = getattr(torch, dtype)

            def make_sets():
              n = benchmarking.num_input_sets(3 * tdtype.itemsize * shape[0] * shape[1]
                                              * shape[2])
              out = []
              for s in range(n):
                a, b, ct = tensors(shape, tdtype, s, layout)
                a.requires_grad_(mode != "fwd")
                b.requires_grad_(mode != "fwd")
                out.append((a, b, ct))
              return out

            return timed(scan, mode, 2, make_sets)

          yield record, build

  def layer_peer(op, impl, make_module):
    for batch, time, features in _shapes(args):
      for dtype in sorted(dtypes, key=lambda d: d != "float32"):
        for mode in modes:
          record = benchmarking.Record("peers", op, impl, "torch", mode, dtype, batch, time,
                                       features)

          def build(mode=mode, shape=(batch, time, features), dtype=dtype):
            tdtype = getattr(torch, dtype)
            module = make_module(shape[2]).to(dev, tdtype)

            def fn(x):
              out = module(x)
              return out[0] if isinstance(out, tuple) else out

            fn.params = list(module.parameters()) if mode != "fwd" else []

            def make_sets():
              n = benchmarking.num_input_sets(2 * tdtype.itemsize * shape[0] * shape[1]
                                              * shape[2])
              out = []
              for s in range(n):
                _, x, ct = tensors(shape, tdtype, s)
                x.requires_grad_(mode != "fwd")
                out.append((x, ct))
              return out

            return timed(fn, mode, 1, make_sets)

          yield record, build

  if peer == "accelerated-scan":
    from accelerated_scan import scalar
    yield from scan_peer("accelerated-scan (Triton)", scalar.scan, "bdt")
    # The CUDA variant compiles its extension on import (about a minute), and may fail to.
    try:
      from accelerated_scan import warp
    except Exception as exc:
      yield benchmarking.Record("peers", "scan", "accelerated-scan (CUDA warp)", "torch", "-",
                                "-", 0, 0, 0, status=f"unavailable: {_failure(exc)}"), None
    else:
      yield from scan_peer("accelerated-scan (CUDA warp)", warp.scan, "bdt")
  elif peer == "fla":
    from fla.ops.hgrn import chunk_hgrn
    # HGRN's recurrence h_t = exp(g_t) h_{t-1} + x_t takes the log of the decay.
    yield from scan_peer("fla chunk_hgrn", lambda a, b: chunk_hgrn(b, torch.log(a))[0], "btd")
  elif peer == "mingru-pytorch":
    from minGRU_pytorch.minGRU import minGRU
    from minGRU_pytorch.minLSTM import minLSTM
    yield from layer_peer("minGRU", "mingru-pytorch", lambda d: minGRU(d))
    yield from layer_peer("minLSTM", "mingru-pytorch", lambda d: minLSTM(d))
  elif peer == "cudnn":
    yield from layer_peer("GRU", "cuDNN GRU (torch)",
                          lambda d: torch.nn.GRU(d, d, batch_first=True))
    yield from layer_peer("LSTM", "cuDNN LSTM (torch)",
                          lambda d: torch.nn.LSTM(d, d, batch_first=True))
  else:
    raise ValueError(f"unknown peer {peer!r}; choose from {PEERS}")


def _run_torch(args, writer, peer):
  import torch

  cases = list(_torch_cases(args, peer))
  for record, _ in cases:
    writer.write("planned", record)
  for record, build in cases:
    if time.time() > args.deadline:
      record.status = "skipped: out of the run's time budget"
      writer.write("result", record)
      continue
    if build is None:
      writer.write("result", record)
      continue
    try:
      run, make_sets = build()
      if record.time > args.cudnn_max_t and "cuDNN" in record.impl:
        record.status = f"skipped: cuDNN beyond T={args.cudnn_max_t}"
      else:
        record.ms = benchmarking.time_torch(run, make_sets(), max_reps=20, target_s=0.15)
    except Exception as exc:
      record.status = _failure(exc)
    writer.write("result", record)
    print(f"peers  {record.op:8s} {record.impl:28s} {record.mode:7s} {record.dtype:8s} "
          f"B={record.batch:<3d} T={record.time:<6d} "
          f"{record.ms if record.ms is not None else record.status}", flush=True)
    if "CUDA error" in record.status or "illegal memory" in record.status:
      sys.exit(3)  # The context is lost; the parent marks the rest of this peer's cases.
    torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# Orchestration.


def _child_command(args, group, jsonl):
  forward = ["--suites", args.suites, "--T", args.T, "--wide-T", args.wide_T,
             "--dtypes", args.dtypes, "--modes", args.modes,
             "--sequential-max-t", str(args.sequential_max_t),
             "--cudnn-max-t", str(args.cudnn_max_t), "--tune-kernels", args.tune_kernels,
             "--compile-threads", str(args.compile_threads), "--deadline", str(args.deadline)]
  return [sys.executable, __file__, "--child", group, "--jsonl", jsonl, *forward]


def _collect(jsonl: pathlib.Path, group: str, returncode: int, stderr_tail: str):
  planned, done = {}, {}
  if jsonl.exists():
    for line in jsonl.read_text().splitlines():
      (kind, data), = json.loads(line).items()
      record = benchmarking.Record.from_json(data)
      (planned if kind == "planned" else done)[record.key()] = record
  if not planned and returncode != 0:
    reason = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else f"exit {returncode}"
    return [], f"unavailable: {reason[:200]}"
  records = []
  for key, record in planned.items():
    if key not in done:
      record.status = f"crashed: {group} process ended (exit {returncode}) before this case"
    records.append(done.get(key, record))
  return records, None


def _orchestrate(args):
  import jax

  out_dir = pathlib.Path(args.out_dir)
  meta = {**benchmarking.environment(PEER_PACKAGES), "args": vars(args)}
  meta["bandwidth_xla_tbs"] = benchmarking.copy_bandwidth() / 1e12
  try:
    meta["bandwidth_torch_tbs"] = benchmarking.copy_bandwidth_torch() / 1e12
  except Exception as exc:  # No PyTorch or no CUDA: the XLA figure alone.
    print(f"no PyTorch copy bandwidth: {_failure(exc)}")
  meta["bandwidth_tbs"] = _bandwidth_tbs(meta)
  print(f"{meta['device']}: copy bandwidth {meta['bandwidth_tbs']:.2f} TB/s", flush=True)
  jax.clear_caches()

  suites = args.suites.split(",")
  groups = (["jax"] if {"scan", "layers", "tune"} & set(suites) else [])
  if "peers" in suites:
    groups += [p for p in args.peers.split(",") if p]
  records, unavailable = [], []
  with tempfile.TemporaryDirectory() as tmp:
    for group in groups:
      jsonl = pathlib.Path(tmp) / f"{group}.jsonl"
      proc = subprocess.run(_child_command(args, group, str(jsonl)), stderr=subprocess.PIPE,
                            text=True)
      sys.stderr.write(proc.stderr[-3000:])
      group_records, reason = _collect(jsonl, group, proc.returncode, proc.stderr[-2000:])
      records += group_records
      if reason:
        unavailable.append((group, reason))
  for group, reason in unavailable:
    records.append(benchmarking.Record("peers", "-", group, "torch", "-", "-", 0, 0, 0,
                                       status=reason))
  _apply_floors(records, meta["bandwidth_tbs"])
  written = benchmarking.write_results(records, meta, out_dir / f"benchmark_{args.name}",
                                       panels=PANELS if args.plot else ())
  print("\n".join(str(p) for p in written))
  _print_summary(records)


def _bandwidth_tbs(meta) -> float:
  return max(meta.get("bandwidth_xla_tbs", 0.0), meta.get("bandwidth_torch_tbs", 0.0))


def _apply_floors(records, bandwidth_tbs):
  """Sets each record's memory floor at `bandwidth_tbs` (tuning records have none)."""
  for record in records:
    kind = "scan" if record.op.startswith("scan") else "layer"
    arrays = FLOOR_ARRAYS.get((kind, record.mode))
    if record.status == "ok" and arrays and record.suite != "tune":
      itemsize = 2 if record.dtype in ("bfloat16", "float16") else 4
      record.floor_ms = benchmarking.floor_ms(
          arrays, record.batch * record.time * record.features, itemsize, bandwidth_tbs * 1e12)


def _print_summary(records):
  print("\nsummary (ms, % of memory floor):")
  for r in sorted(records, key=lambda r: r.key()):
    if r.suite == "tune":
      continue
    value = f"{r.ms:9.3f} {r.pct_floor or 0:5.0f}%" if r.ms is not None else r.status[:60]
    print(f"{r.op:8s} {r.mode:7s} {r.dtype:8s} B={r.batch:<3d} T={r.time:<6d} {r.impl:30s} "
          f"{value}")
  tuned = {}
  for r in records:
    if r.suite == "tune" and r.ms is not None:
      key = (r.op, r.dtype, r.batch, r.time, r.features)
      if key not in tuned or r.ms < tuned[key].ms:
        tuned[key] = r
  for key, r in sorted(tuned.items()):
    print(f"best {key}: {r.impl} {r.ms:.4f} ms")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--suites", default="scan,layers,peers",
                      help="comma list of scan, layers, peers, tune")
  parser.add_argument("--peers", default=",".join(PEERS), help="comma list of " + ", ".join(PEERS))
  parser.add_argument("--tune-kernels", default="scan",
                      help="comma list of kernels the tune suite sweeps: scan (the plain "
                      "Triton-lowered kernels), mosaic (the plain Mosaic GPU kernels), minGRU, "
                      "minLSTM (their fused-gate kernels)")
  parser.add_argument("--T", default="512,1024,2048,4096,16384",
                      help="sequence lengths for B=64 D=256")
  parser.add_argument("--wide-T", default="4096", help="sequence lengths for B=8 D=1024")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--modes", default="fwd,fwd+bwd")
  parser.add_argument("--sequential-max-t", type=int, default=4096,
                      help="longest T for lax.scan (it takes ~0.7 s per call at T=16384)")
  parser.add_argument("--cudnn-max-t", type=int, default=16384)
  parser.add_argument("--compile-threads", type=int, default=8)
  parser.add_argument("--time-budget", type=float, default=float("inf"),
                      help="seconds after which no new case starts (the rest are reported as "
                      "skipped), to fit a time-limited session")
  parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
  parser.add_argument("--quick", action="store_true",
                      help="T in {512, 4096}, float32, no wide case")
  parser.add_argument("--name", default="all", help="results file suffix")
  parser.add_argument("--out-dir", default=str(_REPO / "experiments" / "results"))
  parser.add_argument("--no-plot", dest="plot", action="store_false")
  parser.add_argument("--merge", nargs="+", metavar="JSON",
                      help="merge results files into <out-dir>/benchmark.{json,md,png}")
  parser.add_argument("--child", help=argparse.SUPPRESS)
  parser.add_argument("--jsonl", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.quick:
    args.T, args.wide_T, args.dtypes = "512,4096", "", "float32"
  if args.deadline is None:
    args.deadline = time.time() + args.time_budget

  if args.merge:
    records, meta = benchmarking.load_results(args.merge)
    # One floor for all runs: the highest bandwidth any of them measured.
    meta["bandwidth_tbs"] = max(_bandwidth_tbs(run) for run in meta["runs"])
    _apply_floors(records, meta["bandwidth_tbs"])
    written = benchmarking.write_results(records, meta, pathlib.Path(args.out_dir) / "benchmark",
                                         panels=PANELS if args.plot else ())
    print("\n".join(str(p) for p in written))
    return
  if args.child:
    writer = _Writer(args.jsonl)
    try:
      if args.child == "jax":
        _run_jax(args, writer)
      else:
        _run_torch(args, writer, args.child)
    except Exception:
      traceback.print_exc()
      sys.exit(2)
    return
  _orchestrate(args)


if __name__ == "__main__":
  main()
