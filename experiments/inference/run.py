"""Inference: prompt processing and per-token decoding against context length and batch, for
minGRU, minLSTM, GRU, LSTM, Mamba and the Transformer ("Were RNNs All We Needed?", Appendix
D.2, and the flat cost per token of a recurrent model).

    python experiments/inference/run.py --budget_s 540               # paper width (GPU)
    python experiments/inference/run.py --features 64 --num_layers 2 --num_heads 4 \\
        --contexts 1024,2048,4096,8192,16384 --batch_context 1024 --generate 32 --name inference_cpu

Every model is the language model of `configs/shakespeare.py:<model>` (its block composition)
at one size for all (`--features`, `--num_layers`, vocabulary 65), with random parameters (the
cost does not depend on them), generating through `minrnn.models.make_generator`, the path
`python -m minrnn.sample` takes: the prompt in parallel mode, `--prompt_chunk` tokens at a time
with the state carried (prefill), then `--generate` tokens one jitted step each (decode). The
Transformer's key-value cache is preallocated to prompt + generated tokens, so its step reads
the whole context; the recurrent models' state is the same size at any context.

Cases: the context sweep (`--contexts` at batch `--context_batch`) and the batch sweep
(`--batches` at context `--batch_context`). Time: each program compiled ahead of time, then
the median of repeated calls (`minrnn.kernels.benchmarking.time_jax`), or a single call when
one takes over `--single_call_s`. Decoding is reported per generated token (one step of the
whole batch) and as tokens per second (batch x tokens / time). Memory: the decoding state's
bytes, and XLA's compiled footprint (arguments + outputs + temporaries) of each program; the
larger footprint is the peak of generation. Writes `experiments/results/<name>.{json,md,png}`
after every case, so a run cut by a time limit keeps what it measured.
"""

from __future__ import annotations

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from experiments import reporting  # noqa: E402
from minrnn import cli  # noqa: E402
from experiments.inference import report  # noqa: E402

VOCAB = 65  # Tiny Shakespeare's characters.


def parse_args(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default=",".join(report.NAMES))
  parser.add_argument("--contexts", default="1024,2048,4096,8192,16384,32768,65536",
                      help="prompt lengths of the context sweep")
  parser.add_argument("--context_batch", type=int, default=8, help="batch of the context sweep")
  parser.add_argument("--batches", default="8,16,32,64", help="batches of the batch sweep")
  parser.add_argument("--batch_context", type=int, default=2048,
                      help="prompt length of the batch sweep (the paper's longest)")
  parser.add_argument("--features", type=int, default=384, help="model width (paper: 384)")
  parser.add_argument("--num_layers", type=int, default=3, help="blocks (paper: 3)")
  parser.add_argument("--num_heads", type=int, default=6, help="Transformer heads")
  parser.add_argument("--generate", type=int, default=64, help="tokens generated per call")
  parser.add_argument("--prompt_chunk", type=int, default=512,
                      help="prompt tokens processed at once (bounds attention's scores)")
  parser.add_argument("--single_call_s", type=cli.finite_float, default=2.0,
                      help="time a program by one call when one call takes longer")
  parser.add_argument("--repeat_s", type=cli.finite_float, default=0.5,
                      help="seconds of repeated calls per timing (at least 3 calls)")
  parser.add_argument("--transformer_max_context", type=int, default=None,
                      help="skip the Transformer at longer contexts (its prompt is quadratic)")
  parser.add_argument("--budget_s", type=cli.finite_float, default=None,
                      help="start no case after this many seconds (default: no limit)")
  parser.add_argument("--name", default="inference", help="results file name")
  parser.add_argument("--out_dir", default=str(reporting.RESULTS_DIR))
  return parser.parse_args(argv)


def cases(args) -> list[tuple[int, int]]:
  """(context, batch) pairs: both sweeps, shortest context first, each pair once."""
  pairs = [(c, args.context_batch) for c in map(int, args.contexts.split(","))]
  pairs += [(args.batch_context, b) for b in map(int, args.batches.split(","))]
  return sorted(set(pairs))


def _model(kind: str, args, cache_size: int):
  from minrnn.models import build_language_model
  from minrnn.training.config import load_config

  section = load_config(f"configs/shakespeare.py:{kind}").model
  section.update(features=args.features, num_layers=args.num_layers, dropout=0.0)
  if kind == "transformer":
    section.cell_kwargs.update(num_heads=args.num_heads, cache_size=cache_size)
  return build_language_model(section, VOCAB, seed=0)


def _footprint(compiled) -> int | None:
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  return (analysis.argument_size_in_bytes + analysis.output_size_in_bytes +
          analysis.temp_size_in_bytes)


def _time_ms(compiled, call_args, single_call_s: float, repeat_s: float):
  """(median ms per call, the last output); one call only when a call is slow."""
  import jax
  from minrnn.kernels import benchmarking

  start = time.perf_counter()
  out = jax.block_until_ready(compiled(*call_args))
  once = time.perf_counter() - start
  if once > single_call_s:
    return 1e3 * once, out
  return benchmarking.time_jax(compiled, [call_args], warmup=1, min_reps=3,
                               target_s=repeat_s), out


def run_case(kind: str, context: int, batch: int, args) -> dict:
  """The measures of one (model, context, batch); see the module docstring."""
  import jax
  from flax import nnx
  from minrnn.models import make_generator

  model = _model(kind, args, cache_size=context + args.generate)
  generator = make_generator(model, length=args.generate, temperature=1.0,
                             prompt_chunk=args.prompt_chunk)
  params = generator.params
  prompt = jax.random.randint(jax.random.key(1), (batch, context), 0, VOCAB)
  prefill = generator.prefill_program.lower(params, prompt).compile()
  prefill_ms, (state, scores) = _time_ms(prefill, (params, prompt), args.single_call_s,
                                         args.repeat_s)
  key = jax.random.key(2)
  decode = generator.decode_program.lower(params, state, scores, key).compile()
  decode_ms, _ = _time_ms(decode, (params, state, scores, key), args.single_call_s,
                          args.repeat_s)
  token_ms = decode_ms / args.generate
  return {
      "params": sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))),
      "prefill_ms": prefill_ms,
      "prefill_tokens_per_s": batch * context / (prefill_ms * 1e-3),
      "decode_ms_per_token": token_ms,
      "decode_tokens_per_s": batch / (token_ms * 1e-3),
      "state_bytes": sum(x.nbytes for x in jax.tree.leaves(state)),
      "prefill_bytes": _footprint(prefill),
      "decode_bytes": _footprint(decode),
  }


def main(argv=None) -> dict:
  args = parse_args(argv)
  models = args.models.split(",")
  for kind in models:
    if kind not in report.NAMES:
      raise ValueError(f"Unknown model {kind!r}; choose from {list(report.NAMES)}.")
  env = reporting.environment()
  start = time.perf_counter()
  records, payload = [], {}
  for context, batch in cases(args):
    for kind in models:
      record = {"model": kind, "context": context, "batch": batch, "status": "ok"}
      if args.budget_s is not None and time.perf_counter() - start > args.budget_s:
        record["status"] = "skipped: time budget"
      elif kind == "transformer" and context > (args.transformer_max_context or context):
        record["status"] = "skipped: --transformer_max_context"
      else:
        try:
          record.update(run_case(kind, context, batch, args))
        except Exception as e:  # pylint: disable=broad-except
          # Out of memory at one size must not lose the other cases.
          record["status"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
      records.append(record)
      print(f"{kind} context={context} batch={batch}: "
            f"{record.get('decode_ms_per_token')} ms/token, {record['status']}", flush=True)
      elapsed = time.perf_counter() - start
      settings = {k: v for k, v in vars(args).items() if k != "out_dir"}  # No machine paths.
      payload = {"experiment": "inference", "settings": settings, "paper": report.PAPER,
                 "records": records, "wall_s": round(elapsed, 1), "environment": env}
      reporting.write_results(args.name, payload, report.markdown(records, args, env, elapsed),
                              report.figure(records, args), args.out_dir)
  return payload


if __name__ == "__main__":
  with cli.user_errors(verbose_flag=None):
    main()
