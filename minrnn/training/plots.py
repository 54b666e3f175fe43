"""The figure of a training run, drawn from its `metrics.jsonl`.

It uses matplotlib's object-oriented API and its Agg canvas directly, so importing minrnn never
changes the global backend (a notebook's inline figures keep working).
"""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from minrnn.training.metrics import series

# Metrics other than the loss that a task's headline can name, with their axis label.
_LABELS = {"accuracy": "eval accuracy", "sequence_accuracy": "eval sequence accuracy",
           "bits_per_token": "eval bits per token", "perplexity": "eval perplexity",
           "normalized_score": "normalised score"}


def plot_run(records: Sequence[dict[str, Any]], headline: str, path: str | pathlib.Path,
             title: str = "") -> Figure:
  """Training and evaluation loss against step (log scale where it spans a decade or more),
  and beside it the task's headline metric when the evaluations report it; saved at `path`
  and returned."""
  steps = {split: series(records, split, "loss") for split in ("train", "eval")}
  headline_steps, headline_values = series(records, "eval", headline)
  two = headline != "loss" and bool(headline_steps)
  fig = Figure(figsize=(10 if two else 6, 4))
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, 2) if two else [fig.subplots()]
  ax = axes[0]
  for split, style in (("train", "-"), ("eval", "o-")):
    if steps[split][0]:
      ax.plot(*steps[split], style, label=split, markersize=3)
  losses = [v for _, values in steps.values() for v in values if v > 0]
  if losses and max(losses) >= 10 * min(losses):
    ax.set_yscale("log")
  ax.set(xlabel="step", ylabel="loss (per scored token)", title=title)
  ax.grid(alpha=0.3)
  ax.legend()
  if two:
    axes[1].plot(headline_steps, headline_values, "o-", markersize=3)
    axes[1].set(xlabel="step", ylabel=_LABELS.get(headline, headline))
    axes[1].grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return fig
