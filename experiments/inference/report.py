"""The inference experiment's table and figure (see `run.py`): cost per generated token, memory
and prompt processing against context, throughput against batch, and the paper's D.2 beside
the minimal models' speed-ups."""

from __future__ import annotations

from experiments import reporting

NAMES = {"mingru": "minGRU", "minlstm": "minLSTM", "gru": "GRU", "lstm": "LSTM",
         "mamba": "Mamba", "transformer": "Transformer"}
# (minimal model, the model it is compared with) in the D.2 table.
PAIRS = (("mingru", "gru"), ("minlstm", "lstm"), ("mingru", "mamba"), ("minlstm", "mamba"))
# The one D.2 number this project's sources give; the appendix's other percentages were not at
# hand, so the table leaves them out rather than guess.
PAPER = {"mingru_vs_gru": {64: 19.6},
         "source": "arXiv 2410.01201, Appendix D.2: minGRU's inference 19.6 % faster than GRU "
                   "at batch 64 (batches 8-64, context up to 2048); the other D.2 percentages "
                   "are not quoted here"}
MIB = 2**20


def _ok(records):
  return {(r["model"], r["context"], r["batch"]): r for r in records if r["status"] == "ok"}


def _models(records):
  return list(dict.fromkeys(r["model"] for r in records))


def _table(header, rows):
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return lines + ["| " + " | ".join(row) + " |" for row in rows]


def faster_pct(ok, fast, slow, context, batch):
  """How much faster `fast` decodes than `slow`, in % (tokens/s ratio - 1); None if either is
  missing."""
  a, b = ok.get((fast, context, batch)), ok.get((slow, context, batch))
  if a is None or b is None:
    return None
  return 100.0 * (a["decode_tokens_per_s"] / b["decode_tokens_per_s"] - 1.0)


def _targets(ok, models, args, contexts):
  """Lines on the issue's targets, as far as this run measured them."""
  lines = []
  bc = args.context_batch
  for kind in ("mingru", "transformer"):
    got = [c for c in contexts if (kind, c, bc) in ok]
    if kind in models and len(got) > 1:
      first, last = ok[kind, got[0], bc], ok[kind, got[-1], bc]
      change = 100.0 * (last["decode_ms_per_token"] / first["decode_ms_per_token"] - 1.0)
      lines.append(f"- {NAMES[kind]}: the cost per generated token changes by {change:+.1f} % "
                   f"from context {got[0]} to {got[-1]} (batch {bc})"
                   + (" (target: within 10 %)." if kind == "mingru" else "."))
  batch = max((r[2] for r in ok if r[0] == "mingru" and r[1] == args.batch_context),
              default=None)
  pct = None if batch is None else faster_pct(ok, "mingru", "gru", args.batch_context, batch)
  if pct is not None:
    lines.append(f"- At batch {batch}, context {args.batch_context}: minGRU decodes "
                 f"{pct:+.1f} % faster than GRU (target: >= 0; paper at batch 64: +19.6 %).")
  return lines


def markdown(records, args, env, elapsed) -> str:
  ok, models = _ok(records), _models(records)
  bc, cb = args.context_batch, args.batch_context
  contexts = sorted({r["context"] for r in records if r["batch"] == bc})
  batches = sorted({r["batch"] for r in records if r["context"] == cb})
  sizes = ", ".join(f"{NAMES[m]} {r['params']:,}" for m in models
                    for r in [next((v for k, v in ok.items() if k[0] == m), None)] if r)
  cpu = env["platform"] == "cpu"
  lines = [
      "# Inference: prompt processing and per-token decoding" + (" (CPU, small model)"
                                                                 if cpu else ""),
      "",
      f"Each model is the Shakespeare language model of its kind at width {args.features}, "
      f"{args.num_layers} blocks, vocabulary 65, float32 (parameters: {sizes}). The prompt runs "
      f"in parallel mode {args.prompt_chunk} tokens at a time, then {args.generate} tokens are "
      "generated one jitted step each (`minrnn.models.make_generator`); the Transformer's "
      "key-value cache is preallocated to prompt + generated tokens. Time: median ms; memory: "
      "the decoding state, and XLA's compiled footprint (arguments + outputs + temporaries) of "
      "the larger of the two programs (the peak of generation).",
      *(["", "On a CPU shared with other work the times are noisy (the batch sweep most): "
          "compare trends, not numbers; the paper's setting is a GPU."] if cpu else []),
      "",
      f"## Cost per generated token against context (batch {bc})",
      "",
      "ms per decoding step of the whole batch:",
      "",
  ]
  cell = lambda key, field, scale=1.0, digits=3: reporting.fmt(
      None if key not in ok or ok[key][field] is None else ok[key][field] / scale, digits)
  lines += _table(["context", *(NAMES[m] for m in models)],
                  [[str(c), *(cell((m, c, bc), "decode_ms_per_token") for m in models)]
                   for c in contexts])
  lines += ["", f"## Memory against context (batch {bc}): state MiB / peak MiB", ""]
  lines += _table(["context", *(NAMES[m] for m in models)], [
      [str(c), *(f"{cell((m, c, bc), 'state_bytes', MIB, 2)} / "
                 f"{reporting.fmt(_peak(ok.get((m, c, bc))), 1)}" for m in models)]
      for c in contexts])
  lines += ["", f"## Prompt processing against context (batch {bc}): ms per prompt", ""]
  lines += _table(["context", *(NAMES[m] for m in models)],
                  [[str(c), *(cell((m, c, bc), "prefill_ms", 1.0, 1) for m in models)]
                   for c in contexts])
  lines += ["", f"## Decoding throughput against batch (context {cb}): tokens/s", ""]
  lines += _table(["batch", *(NAMES[m] for m in models)],
                  [[str(b), *(cell((m, cb, b), "decode_tokens_per_s", 1.0, 0) for m in models)]
                   for b in batches])
  lines += ["", f"## Beside the paper's Appendix D.2 (decoding, context {cb})", "",
            "% faster = tokens/s of the minimal model / tokens/s of the other - 1. Paper: "
            "only its minGRU-vs-GRU number at batch 64 is quoted; – where not quoted.", ""]
  pairs = [p for p in PAIRS if p[0] in models and p[1] in models]
  header = [h for a, b in pairs for h in (f"{NAMES[a]} vs {NAMES[b]}", "paper")]
  lines += _table(["batch", *header], [
      [str(b), *(v for f, s in pairs for v in (
          reporting.fmt(faster_pct(ok, f, s, cb, b), 1),
          reporting.fmt(PAPER.get(f"{f}_vs_{s}", {}).get(b), 1)))]
      for b in batches])
  lines += ["", "Targets:", "", *(_targets(ok, models, args, contexts) or ["- not measured"])]
  failed = [r for r in records if r["status"] != "ok"]
  if failed:
    lines += ["", "Not measured: " + "; ".join(
        f"{NAMES[r['model']]} context {r['context']} batch {r['batch']}: {r['status']}"
        for r in failed)]
  lines += ["", f"Paper: {PAPER['source']}.",
            f"Total wall time {elapsed:.0f} s. " + reporting.environment_line(env)]
  return "\n".join(lines)


def _peak(record) -> float | None:
  if record is None or record["decode_bytes"] is None:
    return None
  return max(record["prefill_bytes"], record["decode_bytes"]) / MIB


def figure(records, args):
  import matplotlib.pyplot as plt

  ok, models = _ok(records), _models(records)
  bc, cb = args.context_batch, args.batch_context
  fig, (ax_t, ax_m, ax_b) = plt.subplots(1, 3, figsize=(15, 4))
  for m in models:
    cs = sorted(c for (k, c, b) in ok if k == m and b == bc)
    if cs:
      line, = ax_t.plot(cs, [ok[m, c, bc]["decode_ms_per_token"] for c in cs], "o-",
                        markersize=3, label=NAMES[m])
      ax_m.plot(cs, [ok[m, c, bc]["state_bytes"] / MIB for c in cs], "o-", markersize=3,
                color=line.get_color(), label=f"{NAMES[m]} state")
      ax_m.plot(cs, [_peak(ok[m, c, bc]) for c in cs], "--", color=line.get_color(), alpha=0.6)
    bs = sorted(b for (k, c, b) in ok if k == m and c == cb)
    if bs:
      ax_b.plot(bs, [ok[m, cb, b]["decode_tokens_per_s"] for b in bs], "o-", markersize=3,
                label=NAMES[m])
  for ax, xlabel, ylabel in (
      (ax_t, "context (tokens)", f"ms per generated token (batch {bc})"),
      (ax_m, "context (tokens)", f"MiB: state (solid), peak (dashed), batch {bc}"),
      (ax_b, "batch", f"tokens/s decoding (context {cb})")):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
  ax_t.legend(fontsize=8)
  fig.tight_layout()
  return fig
