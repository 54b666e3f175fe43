"""The one benchmark runner: linear-scan paths, any registered temporal layer, SRU, PyTorch peers
and the kernels' tuning sweeps, each case against its memory floor.

    python scripts/benchmark.py                          # scan, layers, peers; "benchmark_all"
    python scripts/benchmark.py --quick --name quick     # T in {512, 4096}, float32, no wide case
    python scripts/benchmark.py --suites scan --implementations pallas_triton,pallas_mosaic
    python scripts/benchmark.py --suites layers --layers mingru,minlstm,sru --T 512,4096
    python scripts/benchmark.py --suites layers --import mycells --layers mycell   # the user's cell
    python scripts/benchmark.py --suites sru --T 512,4096 --dtypes float32,bfloat16  # -> sru.*
    python scripts/benchmark.py --suites tune --tune-kernels scan,mosaic,mingru --name tune
    python scripts/benchmark.py --merge experiments/results/benchmark_*.json
    python scripts/benchmark.py --dry-run --out-dir runs/bench_dry   # tiny, any CPU, seconds

Suites (the cases are data beside each kernel op: `kernels/<op>/benchmark.py`):
- `scan`: the recurrence alone through every path of `minrnn.ops.linear_scan`'s table that
  compiles on the platform, or those of `--implementations`;
- `layers`: the temporal layers of `--layers` (any name of `minrnn.layers.registry`; `--import`
  loads modules that register more), each through the paths that apply to it;
- `sru`: SRU's recurrence (per kernel configuration of its sweep) and the SRU layer, with the
  official `sru` package and cuDNN's LSTM as peers;
- `peers`: the PyTorch packages of `--peers` on the scan and layer shapes;
- `tune`: the Pallas kernels alone over their grids of block shapes.
Shapes: B=`--batch` D=`--features` at every `--T`, and B=8 D=1024 at every `--wide-T`;
forward and forward+backward (`--modes`).

The device's copy bandwidth is measured first and every case is reported against its memory
floor. The JAX suites run in one process and each peer group in its own, so a peer that crashes
the device context (or can't be imported) is recorded as such and the others still run.
Results go to `<out-dir>/benchmark_<name>.{json,md,png}` (`sru.{json,md,png}` for a run of the
`sru` suite alone without `--name`); `--merge` combines runs into `<out-dir>/benchmark.*`.
`--dry-run` rehearses the GPU's cases on any machine: Pallas kernels interpreted, B=2 D=128
T=16, float32, forward+backward, no peers, one timing repetition.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys
import time
import traceback

_REPO = pathlib.Path(__file__).resolve().parents[1]
# JAX and PyTorch share the GPU in these processes: allocate on demand, not 75% up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from benchmarks import common, layers, orchestrate, peers, scan, sru  # noqa: E402
from minrnn import cli  # noqa: E402
from minrnn.kernels import benchmarking  # noqa: E402


def _add_case_arguments(parser) -> None:
  parser.add_argument("--suites", default="scan,layers,peers",
                      help="comma list of scan, layers, sru, peers, tune")
  parser.add_argument("--implementations",
                      help="scan suite: comma list of minrnn.ops.linear_scan paths (default: "
                      "every one that compiles on the platform)")
  parser.add_argument("--layers", default="mingru,minlstm",
                      help="layers suite: comma list of registered temporal layers")
  parser.add_argument("--layer-implementations",
                      help="layers suite: comma list of scan paths for linear cells (default: "
                      + ",".join(scan.data.LAYER_IMPLEMENTATIONS) + ", those that apply)")
  parser.add_argument("--layer-options",
                      help='layers suite: per-layer options, "layer:key=value,..." '
                      '(e.g. transformer:num_heads=4)')
  parser.add_argument("--import", dest="imports", action="append", default=[],
                      help="module to import first, e.g. one that registers a cell (repeatable)")
  parser.add_argument("--sru-implementations", default=",".join(sru.data.IMPLEMENTATIONS),
                      help="sru suite: comma list of minrnn.ops.sru paths for the layer")
  parser.add_argument("--no-sweep", action="store_true",
                      help="sru suite: the default kernel configuration only")
  parser.add_argument("--no-sru-peers", action="store_true",
                      help="sru suite: without the official sru package and cuDNN LSTM")
  parser.add_argument("--peers", default=",".join(peers.PEERS),
                      help="peer groups of the peers suite: " + ", ".join(peers.GROUPS))
  parser.add_argument("--tune-kernels", default="scan",
                      help="tune suite: comma list of scan (the Triton-lowered scan kernels), "
                      "mosaic (the Mosaic GPU ones) and linear cells (their fused-gate kernels)")


def _add_shape_arguments(parser) -> None:
  parser.add_argument("--T", default="512,1024,2048,4096,16384",
                      help="sequence lengths of the main shape")
  parser.add_argument("--wide-T", default="4096", help="sequence lengths for B=8 D=1024")
  parser.add_argument("--batch", type=int, default=common.MAIN_SHAPE[0])
  parser.add_argument("--features", type=int, default=common.MAIN_SHAPE[1])
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--modes", default="fwd,fwd+bwd")
  parser.add_argument("--sequential-max-t", type=int, default=4096,
                      help="longest T for lax.scan (it takes ~0.7 s per call at T=16384)")
  parser.add_argument("--cudnn-max-t", type=int, default=16384)


def parse_args(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
  _add_case_arguments(parser)
  _add_shape_arguments(parser)
  parser.add_argument("--compile-threads", type=int, default=8)
  parser.add_argument("--time-budget", type=cli.finite_float, default=None,
                      help="seconds after which no new case starts (the rest are reported as "
                      "skipped), to fit a time-limited session (default: no limit)")
  parser.add_argument("--quick", action="store_true",
                      help="T in {512, 4096}, float32, no wide case")
  parser.add_argument("--dry-run", action="store_true",
                      help="tiny shapes, interpreted kernels, no peers, one repetition")
  parser.add_argument("--name", help="results file suffix: benchmark_<name> (default: all, or "
                      "sru.* for the sru suite alone)")
  parser.add_argument("--out-dir", default=str(_REPO / "experiments" / "results"))
  parser.add_argument("--no-plot", dest="plot", action="store_false")
  parser.add_argument("--merge", nargs="+", metavar="JSON",
                      help="merge results files into <out-dir>/benchmark.{json,md,png}")
  parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
  parser.add_argument("--child", help=argparse.SUPPRESS)
  parser.add_argument("--jsonl", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  _apply_presets(args, argv if argv is not None else sys.argv[1:])
  return args


def _given(argv, flag: str) -> bool:
  return any(a == flag or a.startswith(flag + "=") for a in argv)


def _apply_presets(args, argv) -> None:
  """`--quick` and `--dry-run` defaults (flags given explicitly win), the deadline and the
  results name."""
  if args.quick:
    args.T, args.wide_T, args.dtypes = "512,4096", "", "float32"
  if args.dry_run:
    presets = {"--T": ("T", common.DRY_RUN_T), "--wide-T": ("wide_T", ""),
               "--batch": ("batch", common.DRY_RUN_SHAPE[0]),
               "--features": ("features", common.DRY_RUN_SHAPE[1]),
               "--dtypes": ("dtypes", "float32"), "--modes": ("modes", "fwd+bwd"),
               "--compile-threads": ("compile_threads", 2)}
    for flag, (attribute, value) in presets.items():
      if not _given(argv, flag):
        setattr(args, attribute, value)
  if args.deadline is None:  # The children get it as --deadline (inf: no limit).
    args.deadline = time.time() + (float("inf") if args.time_budget is None else args.time_budget)
  if args.name is None:
    args.name = "sru" if common.names(args.suites) == ["sru"] else "benchmark_all"
  elif not args.name.startswith("benchmark_"):
    args.name = f"benchmark_{args.name}"


def _child(args) -> None:
  """One group's cases, written as JSON lines to `--jsonl` for the parent."""
  writer = common.Writer(args.jsonl)
  if args.child != "jax":
    peers.run_torch(args, args.child, writer)
    return
  for module in args.imports:
    importlib.import_module(module)
  suites = {"scan": scan.scan_cases, "layers": layers.layer_cases, "sru": sru.sru_cases,
            "tune": scan.tune_cases}
  cases = [case for name in common.names(args.suites) if name in suites
           for case in suites[name](args)]
  common.run_jax(args, cases, writer)


def _merge(args) -> None:
  records, meta = benchmarking.load_results(args.merge)
  # One floor for all runs: the highest bandwidth any of them measured.
  meta["bandwidth_tbs"] = max(orchestrate.bandwidth_tbs(run) for run in meta["runs"])
  args.name = "benchmark"
  orchestrate.write(records, meta, args)


def main(argv=None) -> None:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parse_args(argv)
  if args.merge:
    _merge(args)
  elif args.child:
    try:
      _child(args)
    except Exception:
      traceback.print_exc()
      sys.exit(2)
  else:
    orchestrate.orchestrate(args, argv)


if __name__ == "__main__":
  main()
