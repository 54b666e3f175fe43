"""The longest sequence one device can train: a 3-layer d=512 minGRU language model.

    python experiments/scaling/longest_sequence.py                     # on the default device
    python experiments/scaling/longest_sequence.py --batch 8 --dtype bfloat16

Each probe runs a real training step (forward, backward, AdamW update, parameters and optimizer
state donated) at one sequence length `T` in a fresh process, so that an out-of-memory failure
leaves nothing behind and the peak memory is that probe's own
(`jax.devices()[0].memory_stats()["peak_bytes_in_use"]`). The search doubles `T` from `--start`
until a step fails for lack of memory, then bisects to `--granularity` steps. GPU memory is
allocated on demand up to `--mem_fraction` of the device. Every probe's step time and peak
memory are recorded in `experiments/results/scaling_longest_sequence_<device>.{json,md}`;
a search stopped by `--budget_s` records what it found so far.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import re
import subprocess
import sys
import time

from minrnn import cli

_REPO = pathlib.Path(__file__).resolve().parents[2]
_OOM = re.compile(r"RESOURCE_EXHAUSTED|resource exhausted|out of memory|failed to allocate",
                  re.IGNORECASE)


def _parse_args(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--features", type=int, default=512)
  parser.add_argument("--num_layers", type=int, default=3)
  parser.add_argument("--vocab", type=int, default=256, help="256: bytes, as enwik8")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--implementation", default=None,
                      help="linear_scan path (default: the platform's, the Pallas kernel on GPU)")
  parser.add_argument("--start", type=int, default=8192)
  parser.add_argument("--granularity", type=int, default=4096)
  parser.add_argument("--max_time", type=int, default=2**24)
  parser.add_argument("--steps", type=int, default=3, help="timed steps per probe")
  parser.add_argument("--mem_fraction", type=cli.finite_float, default=0.95)
  parser.add_argument("--probe_timeout_s", type=cli.finite_float, default=300)
  parser.add_argument("--budget_s", type=cli.finite_float, default=540,
                      help="stop starting probes after this long (device leases are short)")
  parser.add_argument("--out-dir", default=str(_REPO / "experiments" / "results"))
  parser.add_argument("--probe", type=int, default=None, help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def _probe(args) -> dict:
  """One training step setup at `T = args.probe`, run in this process. Returns its record."""
  sys.path.insert(0, str(_REPO))
  import jax
  import optax
  from flax import nnx

  from minrnn.models import build_language_model
  from minrnn.training.config import lm_defaults

  num_steps = args.probe
  section = lm_defaults()
  section.update(cell="mingru", features=args.features, num_layers=args.num_layers,
                 implementation=args.implementation, dtype=args.dtype)
  model = build_language_model(section, args.vocab, seed=0)
  graphdef, params = nnx.split(model, nnx.Param)
  num_params = sum(x.size for x in jax.tree.leaves(params))
  tx = optax.adamw(1e-3)
  opt_state = tx.init(params)

  @jax.jit
  def make_batch(key):
    return jax.random.randint(key, (args.batch, num_steps + 1), 0, args.vocab)

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, tokens):
    def loss_fn(params):
      logits, _ = nnx.merge(graphdef, params)(tokens[:, :-1])
      return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  tokens = make_batch(jax.random.key(0))
  start = time.perf_counter()
  params, opt_state, loss = step(params, opt_state, tokens)
  loss.block_until_ready()
  first_s = time.perf_counter() - start
  times = []
  for i in range(args.steps):
    tokens = make_batch(jax.random.key(i + 1))
    tokens.block_until_ready()
    start = time.perf_counter()
    params, opt_state, loss = step(params, opt_state, tokens)
    loss.block_until_ready()
    times.append(time.perf_counter() - start)
  stats = jax.devices()[0].memory_stats() or {}
  step_s = sorted(times)[len(times) // 2]
  return {
      "time": num_steps, "ok": True, "loss": float(loss), "num_params": int(num_params),
      "step_ms": 1e3 * step_s, "first_step_s": first_s,
      "tokens_per_s": args.batch * num_steps / step_s,
      "peak_bytes": stats.get("peak_bytes_in_use"), "bytes_limit": stats.get("bytes_limit"),
  }


def _run_probe(num_steps: int, argv: list[str], args) -> dict:
  env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false",
             XLA_PYTHON_CLIENT_MEM_FRACTION=str(args.mem_fraction))
  command = [sys.executable, __file__, *argv, "--probe", str(num_steps)]
  try:
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=args.probe_timeout_s)
  except subprocess.TimeoutExpired:
    return {"time": num_steps, "ok": False, "failure": "timeout"}
  lines = done.stdout.strip().splitlines()
  if done.returncode == 0 and lines:
    return json.loads(lines[-1])
  output = done.stdout + done.stderr
  if _OOM.search(output):
    return {"time": num_steps, "ok": False, "failure": "out of memory"}
  # Anything but memory is a bug to see, not a length limit.
  raise RuntimeError(f"The probe at T={num_steps} failed:\n{output[-4000:]}")


def _round(value: int, granularity: int) -> int:
  return max(granularity, value // granularity * granularity)


def search(args, argv: list[str]) -> dict:
  """Doubling, then bisection, on T. Returns every probe and the longest T that trained."""
  deadline = time.monotonic() + args.budget_s
  probes, longest, shortest_failure = [], None, None

  def run(num_steps):
    record = _run_probe(num_steps, argv, args)
    probes.append(record)
    detail = (f"{record['step_ms']:.0f} ms/step, peak {_gib(record['peak_bytes'])}"
              if record["ok"] else record["failure"])
    print(f"T={num_steps}: {'ok' if record['ok'] else 'failed'} ({detail})", flush=True)
    return record["ok"]

  num_steps = args.start
  while num_steps <= args.max_time and time.monotonic() < deadline:
    if not run(num_steps):
      shortest_failure = num_steps
      break
    longest = num_steps
    num_steps *= 2
  while (longest is not None and shortest_failure is not None and
         shortest_failure - longest > args.granularity and time.monotonic() < deadline):
    middle = _round((longest + shortest_failure) // 2, args.granularity)
    if middle in (longest, shortest_failure):
      break
    if run(middle):
      longest = middle
    else:
      shortest_failure = middle
  finished = (shortest_failure is not None and longest is not None and
              shortest_failure - longest <= args.granularity) or (
                  shortest_failure is None and num_steps > args.max_time)
  return {"probes": sorted(probes, key=lambda p: p["time"]), "longest_time": longest,
          "shortest_failing_time": shortest_failure, "search_finished": finished}


def _gib(nbytes) -> str:
  return "n/a" if nbytes is None else f"{nbytes / 2**30:.2f} GiB"


def _environment() -> dict:
  sys.path.insert(0, str(_REPO))
  from minrnn.kernels import benchmarking
  return benchmarking.environment()


def _markdown(result: dict) -> str:
  setup, env = result["setup"], result["environment"]
  longest = result["longest_time"]
  lines = [
      f"# Longest trainable sequence on one {env['device']}",
      "",
      f"A {setup['num_layers']}-layer d={setup['features']} minGRU language model "
      f"(vocabulary {setup['vocab']}, {setup['dtype']}, batch {setup['batch']}, scan path "
      f"`{setup['implementation'] or 'platform default'}`), one AdamW training step per probe; "
      f"memory allocated on demand up to {setup['mem_fraction']:.0%} of the device.",
      "",
      (f"**Longest T that trained: {longest}**" if longest is not None
       else "**No probed length trained.**") +
      (f" (T={result['shortest_failing_time']} ran out of memory)."
       if result["shortest_failing_time"] is not None else
       " (no length up to the maximum probed ran out of memory).") +
      ("" if result["search_finished"] else " The search stopped at its time budget."),
      "",
      f"jax {env['versions']['jax']}, jaxlib {env['versions']['jaxlib']}, flax "
      f"{env['versions']['flax']}, Python {env['python']}, {env['date']}.",
      "",
      "| T | trained | ms / step | tokens / s | peak memory |",
      "|---|---|---|---|---|",
  ]
  for p in result["probes"]:
    if p["ok"]:
      lines.append(f"| {p['time']} | yes | {p['step_ms']:.1f} | {p['tokens_per_s']:.3g} | "
                   f"{_gib(p['peak_bytes'])} |")
    else:
      lines.append(f"| {p['time']} | no ({p['failure']}) | | | |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = _parse_args(argv)
  if args.probe is not None:
    print(json.dumps(_probe(args)))
    return
  result = search(args, argv)
  result["setup"] = {k: getattr(args, k) for k in (
      "features", "num_layers", "vocab", "batch", "dtype", "implementation", "mem_fraction",
      "granularity")}
  result["environment"] = _environment()
  device = re.sub(r"[^a-z0-9]+", "_", result["environment"]["device"].lower()).strip("_")
  out_dir = pathlib.Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  prefix = out_dir / f"scaling_longest_sequence_{device}"
  prefix.with_suffix(".json").write_text(json.dumps(result, indent=2))
  prefix.with_suffix(".md").write_text(_markdown(result))
  print(f"Wrote {prefix}.json and {prefix}.md")


if __name__ == "__main__":
  with cli.user_errors(verbose_flag=None):
    main()
