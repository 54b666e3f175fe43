"""Statistics of ListOps sets drawn by the Long Range Arena's own generator, which
`tests/test_listops.py` compares minrnn's generator (`minrnn.data.listops`) against.

Not run in CI, and not a minrnn dependency: it needs a checkout of
google-research/long-range-arena (the numbers in the test were drawn at commit cd31e5c) and
NumPy. The generator's module imports TensorFlow and absl only for its command line and file
writing; this script stands in empty modules for them and calls its functions:

    git clone https://github.com/google-research/long-range-arena /tmp/lra
    python scripts/listops_reference_stats.py --lra /tmp/lra --num 40000 --seed 1

It draws trees as LRA's `main` does (`generate_tree(1, 10, 10)` until 500 < length < 2000, kept
in a set), writes each as LRA's input pipeline reads it (parentheses dropped), and prints the
number of tokens (mean, standard deviation, quantiles), the share of each answer 0-9 and the
share of drawn trees that were accepted, as JSON. Python's `random`, seeded, drives it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import random
import sys
import types

import numpy as np

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _stand_ins() -> None:
  """Empty `absl` and `tensorflow.compat.v1` modules: the generator's functions use neither."""
  flags = types.SimpleNamespace(DEFINE_string=lambda *a, **k: None,
                                DEFINE_integer=lambda *a, **k: None, FLAGS=None)
  absl = types.SimpleNamespace(flags=flags, app=types.SimpleNamespace())
  v1 = types.SimpleNamespace()
  tf = types.SimpleNamespace(compat=types.SimpleNamespace(v1=v1))
  sys.modules.update({"absl": absl, "absl.flags": flags, "absl.app": absl.app,
                      "tensorflow": tf, "tensorflow.compat": tf.compat,
                      "tensorflow.compat.v1": v1})


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--lra", required=True, help="a checkout of long-range-arena")
  parser.add_argument("--num", type=int, default=40_000)
  parser.add_argument("--seed", type=int, default=1)
  args = parser.parse_args(argv)
  _stand_ins()
  path = pathlib.Path(args.lra) / "lra_benchmarks" / "data" / "listops.py"
  spec = importlib.util.spec_from_file_location("lra_listops", path)
  lra = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(lra)
  random.seed(args.seed)
  trees, drawn = set(), 0
  while len(trees) < args.num:
    tree, length = lra.generate_tree(1, 10, 10)
    drawn += 1
    if 500 < length < 2000:
      trees.add(tree)
  lengths, labels = [], []
  for tree in trees:
    lengths.append(len(lra.to_string(tree).replace("(", "").replace(")", "").split()))
    labels.append(int(lra.to_value(tree)))
  lengths = np.asarray(lengths)
  print(json.dumps({
      "num": args.num, "seed": args.seed, "accepted_share": args.num / drawn,
      "length_mean": float(lengths.mean()), "length_std": float(lengths.std()),
      "length_quantiles": {str(q): float(np.quantile(lengths, q)) for q in QUANTILES},
      "label_shares": (np.bincount(labels, minlength=10) / args.num).round(4).tolist()}))


if __name__ == "__main__":
  main()
