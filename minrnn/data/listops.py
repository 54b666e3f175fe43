"""ListOps (Nangia & Bowman, 2018) as the Long Range Arena generates it (Tay et al., 2021,
arXiv 2011.04006): nested prefix expressions over the digits 0-9 whose value,
0-9, is the class to predict.

    [MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ]   ->   5

Operators: `[MIN`, `[MAX`, `[MED` (the median, rounded down for an even number of arguments:
`int(np.median(...))`) and `[SM` (the sum modulo 10), each closed by `]`. This is minrnn's own
implementation of the generator in google-research/long-range-arena,
`lra_benchmarks/data/listops.py` (read at commit cd31e5c), with its definition and defaults:

- a node at depth < `max_depth` (the root is at depth 1) is an operator with probability
  `VALUE_P` = 0.25, else a digit drawn uniformly; a node at `max_depth` is a digit;
- an operator is drawn uniformly from the four and takes 2 to `max_args` arguments (uniform,
  both ends included), each a node one level deeper;
- a tree's length is its number of tokens (an operator counts 2: itself and its `]`); trees
  are drawn until `min_length < length < max_length` (both strict) and duplicates are dropped
  (LRA keeps its trees in a set);
- LRA's defaults: `max_depth` 10, `max_args` 10, `min_length` 500, `max_length` 2000, and
  96,000 training and 2,000 validation trees (`num_train_samples`, `num_valid_samples`).

LRA's input pipeline (`lra_benchmarks/listops/input_pipeline.py`) drops the parentheses its
generator writes around every partial application and renames `]` to `X`, so the model reads
exactly these `length` tokens, padded to `max_length`. Here they are int ids: a digit is its
own id (0-9), the operators 10-13, `]` 14, padding 15 (`VOCAB_SIZE` 16); LRA's vocabulary
numbers them in another order, which changes nothing a model can learn.

The trees are drawn level by level for many candidate roots at once with NumPy (every node
draws the same independent choices as LRA's depth-first recursion, so the trees have the same
distribution); a candidate is abandoned as soon as its tokens so far plus one per pending
argument reach `max_length`, since it could no longer be accepted. A split is a pure function
of its seed, size and the generator's settings (`Spec`), and a smaller set is the start of a
larger one with the same seed. `load_split` generates a split once and caches it in the data
directory (`minrnn.data.paths`) under `listops/`, with a checksum that is verified on every read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import uuid
import zipfile
from typing import Iterator

import numpy as np

from minrnn.data.batches import Batch, step_rng
from minrnn.data.paths import ENV_VAR, data_dir

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")  # [LRA] ids 10-13 here
END = "]"
MIN_ID, MAX_ID, MED_ID, SM_ID = 10, 11, 12, 13
END_ID, PAD_ID = 14, 15
VOCAB_SIZE = 16
NUM_CLASSES = 10  # The value of an expression, 0-9.
VALUE_P = 0.25  # [LRA] the chance that a node above the deepest level is an operator
# Candidate roots drawn at once; part of what determines a split (keep it fixed).
_CHUNK = 4096
# Draws of `_CHUNK` roots in a row without a new expression after which generation gives up.
_PATIENCE = 100
# Bump when a change to the generator changes the sets it draws: cached files are keyed by it.
GENERATOR_VERSION = 1
CACHE_DIR = "listops"
_TRAIN_STREAM = 0


@dataclasses.dataclass(frozen=True)
class Spec:
  """The generator's settings; the defaults are LRA's (`lra_benchmarks/data/listops.py`)."""

  max_depth: int = 10
  max_args: int = 10
  min_length: int = 500  # Exclusive.
  max_length: int = 2000  # Exclusive; also the padded width of every batch.

  def __post_init__(self):
    if self.max_depth < 2 or self.max_args < 2:
      raise ValueError(f"ListOps needs max_depth >= 2 and max_args >= 2, got {self.max_depth} "
                       f"and {self.max_args}.")
    if not 0 <= self.min_length < self.max_length - 1:
      raise ValueError(f"ListOps lengths need 0 <= min_length < max_length - 1 (both bounds "
                       f"exclusive), got {self.min_length} and {self.max_length}.")
    longest = 1
    for _ in range(self.max_depth - 1):
      longest = 2 + self.max_args * longest
    if longest <= self.min_length:
      raise ValueError(f"No ListOps expression of depth {self.max_depth} with at most "
                       f"{self.max_args} arguments is longer than min_length={self.min_length} "
                       f"(the longest has {longest} tokens).")

  @classmethod
  def of(cls, settings) -> "Spec":
    """The settings named like the fields, read from a mapping (a config's `data` section)."""
    return cls(**{field.name: settings[field.name] for field in dataclasses.fields(cls)})

  def key(self) -> str:
    return (f"d{self.max_depth}_a{self.max_args}_len{self.min_length}-{self.max_length}"
            f"_v{GENERATOR_VERSION}")


@dataclasses.dataclass(frozen=True)
class Split:
  """A set of expressions: row `i` is `tokens[offsets[i]:offsets[i + 1]]` (uint8 ids) and its
  value is `labels[i]` (uint8, 0-9)."""

  tokens: np.ndarray
  offsets: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def lengths(self) -> np.ndarray:
    return np.diff(self.offsets)

  def row(self, i: int) -> np.ndarray:
    return self.tokens[self.offsets[i]:self.offsets[i + 1]]


def _grow(rng: np.random.Generator, num_roots: int, spec: Spec):
  """Draws `num_roots` trees level by level. Returns the levels (per node: its tree, whether it
  is an operator, its symbol id, its number of arguments) and which trees are accepted."""
  tree = np.arange(num_roots)
  done = np.zeros(num_roots, np.int64)  # Tokens of the nodes drawn so far.
  alive = np.ones(num_roots, bool)
  levels = []
  for depth in range(1, spec.max_depth + 1):
    m = len(tree)
    if depth < spec.max_depth:
      is_op = rng.random(m) <= VALUE_P  # LRA: a digit when random() > VALUE_P.
    else:
      is_op = np.zeros(m, bool)
    digits = rng.integers(0, 10, m)
    ops = rng.integers(MIN_ID, SM_ID + 1, m)
    nargs = np.where(is_op, rng.integers(2, spec.max_args + 1, m), 0)
    done += np.bincount(tree, weights=np.where(is_op, 2, 1), minlength=num_roots).astype(
        np.int64)
    pending = np.bincount(tree, weights=nargs, minlength=num_roots).astype(np.int64)
    alive &= done + pending < spec.max_length  # Each pending argument adds a token at least.
    nargs = np.where(alive[tree], nargs, 0)
    levels.append((tree, is_op, np.where(is_op, ops, digits).astype(np.uint8), nargs))
    tree = np.repeat(tree, nargs)
    if not len(tree):
      break
  return levels, alive & (done > spec.min_length)


def _flatten(levels, accepted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The accepted trees' tokens in prefix order (flat uint8), their offsets and values."""
  levels = [tuple(a[accepted[lv[0]]] for a in lv) for lv in levels]
  levels = [lv for lv in levels if len(lv[0])]
  # Bottom-up: each node's number of tokens and value.
  sizes, values = [None] * len(levels), [None] * len(levels)
  for d in reversed(range(len(levels))):
    tree, is_op, symbol, nargs = levels[d]
    m = len(tree)
    size = np.where(is_op, 2, 1).astype(np.int64)
    value = symbol.astype(np.int64)
    if d + 1 < len(levels):
      parent = np.repeat(np.arange(m), nargs)
      child_size, child_value = sizes[d + 1], values[d + 1]
      size += np.bincount(parent, weights=child_size, minlength=m).astype(np.int64)
      value = np.where(is_op, _apply(symbol, nargs, parent, child_value, m), value)
    sizes[d], values[d] = size, value
  # Top-down: each node's position in the flat output.
  lengths = sizes[0]
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  position = offsets[:-1].copy()  # Absolute, in the flat output.
  tokens = np.empty(offsets[-1], np.uint8)
  for d, (tree, is_op, symbol, nargs) in enumerate(levels):
    tokens[position] = symbol
    tokens[(position + sizes[d] - 1)[is_op]] = END_ID
    if d + 1 < len(levels):
      parent = np.repeat(np.arange(len(tree)), nargs)
      child_size = sizes[d + 1]
      before = np.cumsum(child_size) - child_size  # Tokens of the earlier nodes of the level.
      first = np.cumsum(nargs) - nargs  # Each parent's first child.
      siblings_before = before - before[first[parent]]
      position = position[parent] + 1 + siblings_before
  return tokens, offsets, values[0].astype(np.uint8)


def _apply(symbol, nargs, parent, child_value, m) -> np.ndarray:
  """Each operator's value from its arguments' (`parent[j]` is argument j's node)."""
  order = np.lexsort((child_value, parent))
  ordered = child_value[order]
  first = np.cumsum(nargs) - nargs
  has = nargs > 0  # Digits have no arguments: point them anywhere valid.
  lo = np.where(has, first, 0)
  hi = np.where(has, first + nargs - 1, 0)
  low_mid = np.where(has, first + (nargs - 1) // 2, 0)
  high_mid = np.where(has, first + nargs // 2, 0)
  total = np.bincount(parent, weights=child_value, minlength=m).astype(np.int64)
  return np.select(
      [symbol == MIN_ID, symbol == MAX_ID, symbol == MED_ID],
      [ordered[lo], ordered[hi], (ordered[low_mid] + ordered[high_mid]) // 2],
      total % 10)


def generate(num: int, seed: int, spec: Spec = Spec()) -> Split:
  """`num` distinct expressions drawn from `seed` (see the module docstring)."""
  if num < 1:
    raise ValueError(f"A ListOps split needs at least one expression, got {num}.")
  rng = np.random.default_rng([seed, GENERATOR_VERSION])
  seen: set[bytes] = set()
  rows, labels = [], []
  barren = 0  # Draws in a row that added no expression.
  while len(rows) < num:
    if barren == _PATIENCE:
      raise ValueError(
          f"ListOps drew {_PATIENCE * _CHUNK:,} trees in a row without a new expression "
          f"({len(rows):,} of {num:,} found): {spec} allows too few distinct expressions "
          "of a length in range.")
    before = len(rows)
    levels, accepted = _grow(rng, _CHUNK, spec)
    tokens, offsets, values = _flatten(levels, accepted) if accepted.any() else ([], [0], [])
    for i in range(len(values)):
      row = tokens[offsets[i]:offsets[i + 1]]
      digest = hashlib.blake2b(row.tobytes(), digest_size=16).digest()
      if digest not in seen and len(rows) < num:
        seen.add(digest)
        rows.append(row)
        labels.append(values[i])
    barren = barren + 1 if len(rows) == before else 0
  offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
  return Split(np.concatenate(rows), offsets, np.asarray(labels, np.uint8))


def _checksum(split: Split) -> str:
  digest = hashlib.sha256()
  for array in (split.tokens, split.offsets, split.labels):
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def cache_path(num: int, seed: int, spec: Spec = Spec(),
               configured_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Where the split of `num` expressions from `seed` is cached: `listops/` in the data
  directory (the config's `data.dir`, else `$MINRNN_DATA_DIR`, else the user cache)."""
  return data_dir(configured_dir) / CACHE_DIR / f"seed{seed}_n{num}_{spec.key()}.npz"


def _read(path: pathlib.Path) -> Split:
  try:
    with np.load(path) as stored:
      split = Split(stored["tokens"], stored["offsets"], stored["labels"])
      expected = str(stored["sha256"])
  except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
    raise ValueError(f"The ListOps cache {path} cannot be read ({e}). Delete it: it is "
                     "generated again on the next run.") from None
  if _checksum(split) != expected:
    raise ValueError(f"The ListOps cache {path} is damaged (its checksum does not match its "
                     "contents). Delete it: it is generated again on the next run.")
  return split


def _write(path: pathlib.Path, split: Split) -> None:
  """Writes under a temporary name next to `path`, then renames: a file at `path` is always
  complete."""
  tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "xb") as f:
      np.savez(f, tokens=split.tokens, offsets=split.offsets, labels=split.labels,
               sha256=np.asarray(_checksum(split)))
    os.replace(tmp, path)
  except OSError as e:
    raise OSError(f"Could not write the generated ListOps set to {path} ({e}). Point minrnn "
                  f"at a writable data directory: --config.data.dir=DIR or {ENV_VAR}=DIR.") \
        from None
  finally:
    tmp.unlink(missing_ok=True)


def load_split(num: int, seed: int, spec: Spec = Spec(),
               configured_dir: str | os.PathLike | None = None) -> Split:
  """The split of `num` expressions from `seed`: read from its cache file (checksum verified),
  else generated and cached (`cache_path`)."""
  path = cache_path(num, seed, spec, configured_dir)
  if path.exists():
    return _read(path)
  split = generate(num, seed, spec)
  _write(path, split)
  return split


_SYMBOLS = (*map(str, range(10)), *OPERATORS, END)


def decode(ids) -> str:
  """Token ids as text (padding left out): `[MAX 4 3 ]`."""
  return " ".join(_SYMBOLS[int(i)] for i in ids if int(i) != PAD_ID)


def encode(text: str) -> np.ndarray:
  """Whitespace-separated tokens (`[MAX 4 3 ]`) as int32 ids."""
  index = {symbol: i for i, symbol in enumerate(_SYMBOLS)}
  try:
    return np.asarray([index[t] for t in text.split()], np.int32)
  except KeyError as e:
    raise ValueError(f"{e.args[0]!r} is not a ListOps token; they are {', '.join(_SYMBOLS)}.") \
        from None


def make_batch(split: Split, rows: np.ndarray, width: int, size: int | None = None) -> Batch:
  """Rows `rows` of `split`, right-padded to `width`, then padding rows up to `size` rows.

  Returns int32 `inputs` `(size, width)` (PAD_ID after each row's end), int32 `seq_lengths`
  `(size,)`, int32 `labels` `(size,)` and float32 `weights` `(size, width)`, 1 on each row's
  tokens and 0 on padding; a padding row has length 0 and weights 0.
  """
  rows = np.asarray(rows, np.int64)
  size = len(rows) if size is None else size
  lengths = np.zeros(size, np.int32)
  lengths[:len(rows)] = split.lengths[rows]
  if lengths.max(initial=0) > width:
    raise ValueError(f"A ListOps row of {lengths.max()} tokens does not fit the width {width}.")
  mask = np.arange(width)[None, :] < lengths[:, None]
  starts = split.offsets[rows]
  # Row-major order of `mask` is each row's tokens in turn.
  within = np.arange(mask.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
  inputs = np.full((size, width), PAD_ID, np.int32)
  inputs[mask] = split.tokens[np.repeat(starts, lengths[:len(rows)]) + within]
  labels = np.zeros(size, np.int32)
  labels[:len(rows)] = split.labels[rows]
  return {"inputs": inputs, "seq_lengths": lengths, "labels": labels,
          "weights": mask.astype(np.float32)}


class ListOps:
  """Batches of a training split and fixed evaluation splits, determined by `(seed, step)`.

  Training runs through the training split in epochs, each in the order of a permutation drawn
  from `(seed, epoch)`; every batch is `batch_size` rows (a batch may straddle two epochs).
  Evaluation splits are read in order, in batches of `eval_batch_size` (the last filled with
  padding rows). Every batch is `width` positions wide (LRA pads to its `max_length`).

  Args:
    splits: "train" and the evaluation splits ("valid", "test"), each a `Split`.
    batch_size, eval_batch_size: rows per training and evaluation batch.
    seed: the order of the training rows.
    width: positions per row; at least the longest expression.
    describe: what results should record about the data.
  """

  name = "listops"
  vocab_size = VOCAB_SIZE
  num_classes = NUM_CLASSES
  eval_splits = ("valid", "test")

  def __init__(self, *, splits: dict[str, Split], batch_size: int, eval_batch_size: int,
               seed: int, width: int, describe: dict | None = None):
    missing = {"train", *self.eval_splits} - set(splits)
    if missing:
      raise ValueError(f"ListOps needs the splits {sorted(missing)}.")
    self.splits = splits
    self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
    self.seed, self.width = seed, width
    self._describe = dict(describe or {})
    self._orders: dict[int, np.ndarray] = {}

  def _order(self, epoch: int) -> np.ndarray:
    """The order of the training rows in `epoch` (the last two are kept: a batch may straddle
    two epochs)."""
    if epoch not in self._orders:
      self._orders = {e: o for e, o in self._orders.items() if e == epoch - 1}
      self._orders[epoch] = step_rng(self.seed, _TRAIN_STREAM, epoch).permutation(
          len(self.splits["train"]))
    return self._orders[epoch]

  def train_batch(self, step: int) -> Batch:
    n = len(self.splits["train"])
    index = step * self.batch_size + np.arange(self.batch_size)
    epochs, within = np.divmod(index, n)
    rows = np.concatenate([self._order(int(e))[within[epochs == e]] for e in np.unique(epochs)])
    return make_batch(self.splits["train"], rows, self.width)

  def eval_batches(self, split: str = "valid") -> Iterator[Batch]:
    """The batches of evaluation split `split`, in order."""
    if split not in self.eval_splits:
      raise ValueError(f"ListOps has the evaluation splits {self.eval_splits}; got {split!r}.")
    n, size = len(self.splits[split]), self.eval_batch_size
    for start in range(0, n, size):
      yield make_batch(self.splits[split], np.arange(start, min(start + size, n)), self.width,
                       size)

  def decode(self, ids) -> str:
    return decode(ids)

  def describe(self) -> dict:
    return dict(self._describe)


def load_splits(sizes: dict[str, int], seeds: dict[str, int], spec: Spec = Spec(),
                configured_dir: str | os.PathLike | None = None) -> dict[str, Split]:
  """Each split of `sizes` from its seed in `seeds` (`load_split`). The seeds must differ: a
  split is the start of any larger one with the same seed, so two splits from one seed would
  share their expressions."""
  if sorted(sizes) != sorted(seeds):
    raise ValueError(f"Every ListOps split needs a size and a seed; got sizes for "
                     f"{sorted(sizes)} and seeds for {sorted(seeds)}.")
  if len(set(seeds.values())) < len(seeds):
    raise ValueError(f"The ListOps splits need different seeds (a split is the start of any "
                     f"larger one from the same seed), got {seeds}.")
  return {name: load_split(sizes[name], seeds[name], spec, configured_dir) for name in sizes}
