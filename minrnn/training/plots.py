"""Figures of a training run, drawn from its `metrics.jsonl` (matplotlib, no display needed)."""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

from minrnn.training.metrics import series  # noqa: E402


def plot_loss_curve(records: Sequence[dict[str, Any]], path: str | pathlib.Path,
                    title: str = "") -> None:
  """Training and evaluation loss against step, saved as an image at `path`."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for split, style in (("train", "-"), ("eval", "o-")):
    steps, losses = series(records, split, "loss")
    if steps:
      ax.plot(steps, losses, style, label=split, markersize=3)
  ax.set_xlabel("step")
  ax.set_ylabel("loss (nats per scored token)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
