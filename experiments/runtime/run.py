"""Runtime and memory of one training step (Figure 1 of "Were RNNs All We Needed?").

    python experiments/runtime/run.py                               # B=64, T=64..16384 (GPU)
    python experiments/runtime/run.py --lengths 64,512,4096 --budget_s 200
    python experiments/runtime/run.py --batch 2 --features 8 --lengths 8,16   # CPU smoke run

A case is one layer of a model (minrnn's cell, `features` in and out) and one training step of
it: forward, loss `mean(y**2)`, backward to the parameters and the inputs. Models: minGRU and
minLSTM (parallel scan, `--implementation`, default the platform's: the Pallas kernel on GPU),
GRU and LSTM (Flax's cells, one step at a time with `jax.lax.scan`: the traditional sequential
RNNs), Mamba (`minrnn.layers.Mamba`, pure JAX) and, when PyTorch with CUDA is present, PyTorch's
cuDNN GRU and LSTM (the fastest traditional RNNs there are; optional, `--no_torch` skips).

Time: median over repetitions of back-to-back steps (`minrnn.kernels.benchmarking.time_jax` /
`time_torch`). Memory: for JAX, XLA's compiled footprint of the step (arguments + outputs +
temporaries, `memory_analysis()`); for PyTorch, the peak allocated during one step. Speed-up
ratios divide the GRU's (LSTM's) time by minGRU's (minLSTM's), for Flax's sequential cells and
for cuDNN. The paper's abstract gives 175x for minGRU over GRU at length 512; its Figure 1
compares against the traditional RNNs of its own code base, which the scan-free, sequential
Flax cells here stand in for; cuDNN is the stricter baseline. Writes
`experiments/results/runtime[_<name>].{json,md,png}`, after every case (a run cut by a time
limit keeps what it measured).
"""

from __future__ import annotations

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from experiments import reporting  # noqa: E402
from minrnn import cli  # noqa: E402

JAX_MODELS = {"mingru": "minGRU", "minlstm": "minLSTM", "gru": "GRU", "lstm": "LSTM",
              "mamba": "Mamba"}
TORCH_MODELS = {"cudnn_gru": "cuDNN GRU (torch)", "cudnn_lstm": "cuDNN LSTM (torch)"}
# (fast model, its traditional counterparts): the speed-up ratios reported.
RATIOS = (("mingru", ("gru", "cudnn_gru")), ("minlstm", ("lstm", "cudnn_lstm")))
PAPER = {"mingru_vs_gru_at_512": 175.0,
         "source": "arXiv 2410.01201 abstract: 175x faster than GRU at sequence length 512"}


def parse_args(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--features", type=int, default=256)
  parser.add_argument("--lengths", default="64,128,256,512,1024,2048,4096,8192,16384")
  parser.add_argument("--models", default=",".join(JAX_MODELS))
  parser.add_argument("--implementation", default=None,
                      help="linear_scan path of minGRU/minLSTM/Mamba (default: platform's)")
  parser.add_argument("--no_torch", action="store_true", help="skip the cuDNN baselines")
  parser.add_argument("--budget_s", type=cli.finite_float, default=None,
                      help="start no case after this many seconds (default: no limit)")
  parser.add_argument("--name", default="runtime", help="results file name")
  parser.add_argument("--out_dir", default=str(reporting.RESULTS_DIR))
  return parser.parse_args(argv)


def _jax_case(model: str, batch: int, time_steps: int, features: int, implementation):
  """(ms, bytes) of one training step of a `model` layer."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from minrnn.layers import registry

  # GRU and LSTM only run sequentially: their layers take no scan path.
  layer = registry.build(model, features, expansion=None, rngs=nnx.Rngs(0),
                         implementation=None if model in ("gru", "lstm") else implementation)
  graphdef, params = nnx.split(layer, nnx.Param)

  def loss(params, x):
    y, _ = nnx.merge(graphdef, params)(x)
    return jnp.mean(y.astype(jnp.float32) ** 2)

  step = jax.jit(jax.grad(loss, argnums=(0, 1)))
  x = jax.random.normal(jax.random.key(1), (batch, time_steps, features), jnp.float32)
  compiled = step.lower(params, x).compile()
  analysis = compiled.memory_analysis()
  nbytes = None
  if analysis is not None:
    nbytes = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes +
              analysis.temp_size_in_bytes)
  from minrnn.kernels import benchmarking
  return benchmarking.time_jax(compiled, [(params, x)]), nbytes


def _torch_case(model: str, batch: int, time_steps: int, features: int):
  import torch
  from minrnn.kernels import benchmarking

  cls = torch.nn.GRU if model == "cudnn_gru" else torch.nn.LSTM
  layer = cls(features, features, batch_first=True).cuda()
  x = torch.randn(batch, time_steps, features, device="cuda", requires_grad=True)

  def step(x):
    layer.zero_grad(set_to_none=True)
    y, _ = layer(x)
    (y ** 2).mean().backward()

  step(x)
  torch.cuda.synchronize()
  torch.cuda.reset_peak_memory_stats()
  step(x)
  torch.cuda.synchronize()
  nbytes = torch.cuda.max_memory_allocated()
  return benchmarking.time_torch(step, [(x,)]), nbytes


def _torch_available() -> bool:
  try:
    import torch
  except ImportError:
    return False
  return torch.cuda.is_available()


def _summary(records, args, env, elapsed):
  ok = {(r["model"], r["T"]): r for r in records if r["status"] == "ok"}
  models = list(dict.fromkeys(r["model"] for r in records))
  names = {**JAX_MODELS, **TORCH_MODELS}
  lengths = sorted({r["T"] for r in records})
  lines = [
      "# Runtime and memory of one training step (forward + backward)",
      "",
      f"One layer, batch {args.batch}, width {args.features}, float32; time in ms (median), "
      "memory in MiB (JAX: XLA's compiled footprint; PyTorch: peak allocated).",
      "",
      "| T | " + " | ".join(f"{names[m]} ms | MiB" for m in models) + " |",
      "|---|" + "---|---|" * len(models),
  ]
  for t in lengths:
    cells = []
    for m in models:
      r = ok.get((m, t))
      mib = None if r is None or r["bytes"] is None else r["bytes"] / 2**20
      cells.append(f"{reporting.fmt(r and r['ms'], 2)} | {reporting.fmt(mib, 1)}")
    lines.append(f"| {t} | " + " | ".join(cells) + " |")
  ratio_rows = []
  for fast, slows in RATIOS:
    for slow in slows:
      row = [ok[slow, t]["ms"] / ok[fast, t]["ms"] if (fast, t) in ok and (slow, t) in ok
             else None for t in lengths]
      if any(v is not None for v in row):
        ratio_rows.append((f"{names[fast]} vs {names[slow]}", row))
  if ratio_rows:
    lines += ["", "Speed-up (time of the traditional RNN / time of the minimal one):", "",
              "| | " + " | ".join(f"T={t}" for t in lengths) + " |",
              "|---|" + "---|" * len(lengths)]
    lines += [f"| {label} | " + " | ".join(reporting.fmt(v, 1) for v in row) + " |"
              for label, row in ratio_rows]
  failed = [r for r in records if r["status"] != "ok"]
  if failed:
    lines += ["", "Not measured: " + "; ".join(
        f"{names[r['model']]} T={r['T']}: {r['status']}" for r in failed)]
  lines += ["", f"Paper: {PAPER['source']}.",
            f"Total wall time {elapsed:.0f} s. " + reporting.environment_line(env)]
  return "\n".join(lines), ok, models, names, lengths


def _figure(ok, models, names, lengths):
  import matplotlib.pyplot as plt
  fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
  for m in models:
    ts = [t for t in lengths if (m, t) in ok]
    ax_t.plot(ts, [ok[m, t]["ms"] for t in ts], "o-", markersize=3, label=names[m])
    ts = [t for t in ts if ok[m, t]["bytes"] is not None]
    ax_m.plot(ts, [ok[m, t]["bytes"] / 2**20 for t in ts], "o-", markersize=3, label=names[m])
  for ax, label in ((ax_t, "training step (ms)"), (ax_m, "memory (MiB)")):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  ax_t.legend(fontsize=8)
  fig.tight_layout()
  return fig


def main(argv=None) -> dict:
  args = parse_args(argv)
  models = args.models.split(",")
  for model in models:
    if model not in JAX_MODELS:
      raise ValueError(f"Unknown model {model!r}; choose from {sorted(JAX_MODELS)}.")
  use_torch = not args.no_torch and _torch_available()
  cases = [(m, t) for t in map(int, args.lengths.split(",")) for m in models]
  if use_torch:
    cases += [(m, t) for t in map(int, args.lengths.split(",")) for m in TORCH_MODELS]
  env = reporting.environment()
  start = time.perf_counter()
  records = []
  payload = {}
  for model, t in cases:
    record = {"model": model, "T": t, "batch": args.batch, "features": args.features,
              "ms": None, "bytes": None, "status": "ok"}
    if args.budget_s is not None and time.perf_counter() - start > args.budget_s:
      record["status"] = "skipped: time budget"
    else:
      try:
        if model in TORCH_MODELS:
          record["ms"], record["bytes"] = _torch_case(model, args.batch, t, args.features)
        else:
          record["ms"], record["bytes"] = _jax_case(model, args.batch, t, args.features,
                                                    args.implementation)
      except Exception as e:  # pylint: disable=broad-except
        # Out-of-memory and other failures at one length must not lose the other cases.
        record["status"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
    records.append(record)
    print(f"{model} T={t}: {record['ms']} ms, {record['bytes']} bytes, {record['status']}",
          flush=True)
    elapsed = time.perf_counter() - start
    markdown, ok, shown, names, lengths = _summary(records, args, env, elapsed)
    payload = {"experiment": "runtime", "batch": args.batch, "features": args.features,
               "implementation": args.implementation, "paper": PAPER, "records": records,
               "wall_s": round(elapsed, 1), "environment": env}
    reporting.write_results(args.name, payload, markdown, _figure(ok, shown, names, lengths),
                            args.out_dir)
  return payload


if __name__ == "__main__":
  with cli.user_errors(verbose_flag=None):
    main()
