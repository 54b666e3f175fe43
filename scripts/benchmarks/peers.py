"""PyTorch peers, timed on the same shapes in the same run: one group per package, each in its
own process (a peer that crashes the device context takes only its own cases along).

Groups: `accelerated-scan` (its Triton kernel), `accelerated-scan-cuda` (its CUDA warp kernel,
compiled at import), `fla` (flash-linear-attention's `chunk_hgrn`), `mingru-pytorch`, `cudnn`
(PyTorch's GRU and LSTM) and `sru` (the official `sru` package's layer and recurrence, and cuDNN's
LSTM, as the `sru` suite's peers). Cases missing a package are recorded as unavailable.
"""

from __future__ import annotations

import pathlib
import sys
import time
from typing import Callable, Iterator

from benchmarks.common import Case, Writer, failure, names, shapes
from benchmarks.sru import SUITE as SRU_SUITE
from benchmarks.sru import lengths as sru_lengths
from minrnn.kernels import benchmarking
from minrnn.kernels.sru import benchmark as sru_data

PEERS = ("accelerated-scan", "accelerated-scan-cuda", "fla", "cudnn", "mingru-pytorch")
GROUPS = (*PEERS, "sru")
PACKAGES = ("accelerated-scan", "flash-linear-attention", "fla-core", "mingru-pytorch", "sru")
DEVICE = "cuda"


def _tensors(shape, dtype, seed, layout="btd"):
  """`(a, b, ct)` on the GPU as `make_inputs` draws them; `layout` "bdt" puts time last."""
  import torch

  gen = torch.Generator(device=DEVICE).manual_seed(seed)
  if layout == "bdt":
    shape = (shape[0], shape[2], shape[1])
  a = (torch.rand(shape, device=DEVICE, generator=gen) * 0.5 + 0.5).to(dtype)
  b = torch.randn(shape, device=DEVICE, generator=gen).to(dtype)
  ct = torch.randn(shape, device=DEVICE, generator=gen).to(dtype)
  return a, b, ct


def _timed(fn: Callable, mode: str, num_primals: int, params=()):
  """fn(*primals) -> output, as a call over (primals..., cotangent) in `mode`."""
  import torch

  if mode == "fwd":
    def run(*args):
      with torch.no_grad():
        return fn(*args[:num_primals])
    return run

  def run(*args):
    primals, ct = args[:num_primals], args[num_primals]
    inputs = [p for p in primals if p.requires_grad]
    return torch.autograd.grad(fn(*primals), inputs + list(params), ct)
  return run


def _dtypes(args) -> list[str]:
  # float32 first: a peer that corrupts the device context in bfloat16 takes no float32 along.
  return sorted(names(args.dtypes), key=lambda d: d != "float32")


def _scan_peer(args, impl: str, scan: Callable, layout: str) -> Iterator[Case]:
  import torch

  for shape in shapes(args):
    for dtype in _dtypes(args):
      for mode in names(args.modes):
        def build(mode=mode, shape=shape, dtype=dtype):
          tdtype = getattr(torch, dtype)

          def make_sets():
            out = []
            for s in range(benchmarking.num_input_sets(3 * tdtype.itemsize * shape[0]
                                                       * shape[1] * shape[2])):
              a, b, ct = _tensors(shape, tdtype, s, layout)
              out.append((a.requires_grad_(mode != "fwd"), b.requires_grad_(mode != "fwd"), ct))
            return out

          return _timed(scan, mode, 2), make_sets

        yield Case(benchmarking.Record("peers", "scan", impl, "torch", mode, dtype, *shape),
                   build)


def _layer_peer(args, op: str, impl: str, make_module: Callable) -> Iterator[Case]:
  import torch

  for shape in shapes(args):
    for dtype in _dtypes(args):
      for mode in names(args.modes):
        def build(mode=mode, shape=shape, dtype=dtype):
          tdtype = getattr(torch, dtype)
          module = make_module(shape[2]).to(DEVICE, tdtype)

          def fn(x):
            out = module(x)
            return out[0] if isinstance(out, tuple) else out

          def make_sets():
            out = []
            for s in range(benchmarking.num_input_sets(2 * tdtype.itemsize * shape[0]
                                                       * shape[1] * shape[2])):
              _, x, ct = _tensors(shape, tdtype, s)
              out.append((x.requires_grad_(mode != "fwd"), ct))
            return out

          params = list(module.parameters()) if mode != "fwd" else []
          return _timed(fn, mode, 1, params), make_sets

        yield Case(benchmarking.Record("peers", op, impl, "torch", mode, dtype, *shape), build)


def install_official_sru():
  """Imports the official `sru` from a patched temporary copy of the installed package.

  Its extensions are compiled from `csrc` at first use, and `Tensor.type()` is gone from
  PyTorch's C++ API; the copy's sources use `scalar_type()` instead. The installed package is
  left untouched.
  """
  import importlib.util
  import shutil
  import tempfile

  if "sru" in sys.modules:
    return sys.modules["sru"]
  spec = importlib.util.find_spec("sru")
  if spec is None:
    raise ImportError("sru is not installed (pip install sru==2.6.0)")
  root = pathlib.Path(tempfile.mkdtemp(prefix="sru_patched_"))
  shutil.copytree(pathlib.Path(spec.origin).parent, root / "sru")
  for path in (root / "sru" / "csrc").glob("*.c*"):
    text = path.read_text()
    path.write_text(text.replace("x.type().scalarType()", "x.scalar_type()")
                    .replace("x.type().is_cuda()", "x.is_cuda()")
                    .replace("U.type()", "U.scalar_type()")
                    .replace("AT_ASSERTM", "TORCH_CHECK"))
  sys.path.insert(0, str(root))
  import sru
  import sru.cuda_functional  # noqa: F401  (compiles the CUDA kernel now, not inside timing)
  return sru


def _sru_modules(sru, batch: int, time_: int, features: int, dtype):
  """(op, impl, module) of the sru suite's peers, on their `(time, batch, features)` layout."""
  import torch

  layer = sru.SRU(features, features, num_layers=1).to(DEVICE, dtype)
  cell = layer.rnn_lst[0]

  class Recurrence(torch.nn.Module):
    """The official cell's recurrence alone on a fixed projection `u`."""

    def __init__(self):
      super().__init__()
      self.u = torch.nn.Parameter(torch.randn(time_ * batch, 3 * features, device=DEVICE,
                                              dtype=dtype))

    def forward(self, x):
      c0 = torch.zeros(batch, features, device=DEVICE, dtype=dtype)
      return cell.apply_recurrence(self.u, cell.weight_c, x, c0,
                                   cell.scale_x if cell.rescale else None, None, None)

  lstm = torch.nn.LSTM(features, features).to(DEVICE, dtype)
  return [(sru_data.LAYER, "sru 2.6.0 (CUDA)", layer),
          (sru_data.RECURRENCE, "sru 2.6.0 (CUDA)", Recurrence()),
          (sru_data.LAYER, "cuDNN LSTM (torch)", lstm)]


def _sru_peer(args) -> Iterator[Case]:
  """The sru suite's peers: the gradient of `sum(h)` w.r.t. the input and every parameter."""
  import torch

  torch.backends.cuda.matmul.allow_tf32 = True
  torch.backends.cudnn.allow_tf32 = True
  sru = install_official_sru()
  for dtype in _dtypes(args):
    for time_ in sru_lengths(args):
      shape = (args.batch, time_, args.features)
      tdtype = getattr(torch, dtype)
      for op, impl, module in _sru_modules(sru, *shape, tdtype):
        for mode in names(args.modes):
          def build(module=module, mode=mode, shape=shape, tdtype=tdtype):
            def run(x):
              if mode == "fwd":
                with torch.no_grad():
                  return module(x)
              module.zero_grad(set_to_none=True)
              module(x)[0].float().sum().backward()

            sets = benchmarking.num_input_sets(5 * 4 * shape[0] * shape[1] * shape[2])
            return run, lambda: [(torch.randn(shape[1], shape[0], shape[2], device=DEVICE,
                                              dtype=tdtype, requires_grad=mode != "fwd"),)
                                 for _ in range(sets)]

          yield Case(benchmarking.Record(SRU_SUITE, op, impl, "torch", mode, dtype, *shape),
                     build)


def peer_cases(args, group: str) -> Iterator[Case]:
  """The cases of one peer group (an ImportError means the package is missing)."""
  import torch

  if group == "accelerated-scan":
    from accelerated_scan import scalar
    yield from _scan_peer(args, "accelerated-scan (Triton)", scalar.scan, "bdt")
  elif group == "accelerated-scan-cuda":
    from accelerated_scan import warp  # Compiles its CUDA extension (about a minute).
    yield from _scan_peer(args, "accelerated-scan (CUDA warp)", warp.scan, "bdt")
  elif group == "fla":
    from fla.ops.hgrn import chunk_hgrn
    # HGRN's recurrence h_t = exp(g_t) h_{t-1} + x_t takes the log of the decay.
    yield from _scan_peer(args, "fla chunk_hgrn", lambda a, b: chunk_hgrn(b, torch.log(a))[0],
                          "btd")
  elif group == "mingru-pytorch":
    from minGRU_pytorch.minGRU import minGRU
    from minGRU_pytorch.minLSTM import minLSTM
    yield from _layer_peer(args, "minGRU", "mingru-pytorch", minGRU)
    yield from _layer_peer(args, "minLSTM", "mingru-pytorch", minLSTM)
  elif group == "cudnn":
    yield from _layer_peer(args, "GRU", "cuDNN GRU (torch)",
                           lambda d: torch.nn.GRU(d, d, batch_first=True))
    yield from _layer_peer(args, "LSTM", "cuDNN LSTM (torch)",
                           lambda d: torch.nn.LSTM(d, d, batch_first=True))
  elif group == "sru":
    yield from _sru_peer(args)
  else:
    raise ValueError(f"unknown peer group {group!r}; choose from {', '.join(GROUPS)}")


def run_torch(args, group: str, writer: Writer) -> None:
  """Times one peer group's cases until the deadline; exits with 3 once the CUDA context is
  lost (the parent records the rest as crashed)."""
  import torch

  cases = list(peer_cases(args, group))
  for case in cases:
    writer.write("planned", case.record)
  for case in cases:
    record = case.record
    if time.time() > args.deadline:
      record.status = "skipped: out of the run's time budget"
    elif record.time > args.cudnn_max_t and "cuDNN" in record.impl:
      record.status = f"skipped: cuDNN beyond T={args.cudnn_max_t}"
    else:
      try:
        run, make_sets = case.build()
        record.ms = benchmarking.time_torch(run, make_sets(), max_reps=20, target_s=0.15)
      except Exception as exc:
        record.status = failure(exc)
    writer.write("result", record)
    print(f"peers  {record.op:14s} {record.impl:28s} {record.mode:7s} {record.dtype:8s} "
          f"B={record.batch:<3d} T={record.time:<6d} "
          f"{record.ms if record.ms is not None else record.status}", flush=True)
    if "CUDA error" in record.status or "illegal memory" in record.status:
      sys.exit(3)
    torch.cuda.empty_cache()
