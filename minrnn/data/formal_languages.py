"""Formal-language tasks for length generalisation: train on short strings, test on long ones.

The later versions of "Were RNNs All We Needed?" (arXiv 2410.01201) evaluate on tasks from
"Neural Networks and the Chomsky Hierarchy" (Delétang et al., 2023) and the xLSTM paper's
formal-language set. These generators follow the paper's official code, repository
`BorealisAI/minRNNs` (symbols, row layout, which positions are scored, tie rules); each task
names the file it follows. They are minrnn's own implementation of those semantics.

A task draws a string of `n` symbols `0 .. num_symbols - 1`; `EMPTY = num_symbols` is the
one extra input token. The row the model reads is the task's input and then EMPTY tokens;
the model's outputs at the row's last positions (one, or `n` for `bucket_sort`) are scored
against the answer, as the official `utils/data.py` reads `y_pred[:, -1:]` or
`y_pred[:, -n:]`. Targets are the official labels themselves (answer class `k` is token id
`k`), so a model's vocabulary covers both the inputs and the answer classes (`vocab_size`).

- `parity_check` (`data/parity_check.py`): bits {0, 1}; answer the number of 1s mod 2.
- `even_pairs` (`data/even_pairs.py`): bits {0, 1}; answer the number of unequal adjacent
  pairs mod 2 (0 for a single bit).
- `cycle_nav` (`data/cycle_nav.py`): actions {0, 1, 2} meaning -1, stay, +1 on a cycle of 5
  from position 0; answer the sum of (action - 1) mod 5.
- `bucket_sort` (`data/bucket_sort.py`): symbols 0-9; the row is the string then `n` EMPTY
  tokens, and the `n` EMPTY positions are scored against the string sorted ascending.
- `majority` (`data/majority.py`): symbols 0-62; answer the most frequent symbol, a tie going
  to the larger symbol.
- `majority_count` (`data/majority_count.py`): symbols 0-62; answer how many times the most
  frequent symbol occurs (the raw count, 1 .. n).
- `missing_duplicate` (`data/missing_duplicate.py`): symbols 0-8; the row is the string `w`,
  then its prefix `w[:cut]` (`cut` uniform in `[0, n - 1]`), then EMPTY; answer `w[cut]`.

Every row of a batch is as wide as the longest possible row (`row_width`); the positions
after a row's own end hold EMPTY too. They are never scored and every minrnn model is causal,
so they cannot change a scored output; the official code needs no padding because all rows of
its batch share one length. Differences from the official sampling, both ours: the length
`n` (uniform in `[min_len, max_len]`; 1-40 for training, 40-256 for evaluation as there) and
`missing_duplicate`'s `cut` are drawn for every row, where the official code draws one per
batch.

Scaled accuracy: the paper takes its baselines from the xLSTM paper's Figure 4 (Beck et al.,
2024, arXiv 2405.04517), which plots accuracy rescaled so that chance is 0 and perfect is 1:
`(accuracy - chance) / (1 - chance)` (`scaled_accuracy`). Chance is taken from the answers'
distribution on the evaluation strings (`majority_answer_rate`): the accuracy of always giving
the most frequent answer, the best a model can do without reading the string. Where answers
are uniform (parity_check, even_pairs, cycle_nav, missing_duplicate, bucket_sort's symbols)
that is 1 / (number of answers), a uniform guess; for majority_count it is far above
1 / max_len, since counts near n / 63 are much more frequent than the others.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator

import numpy as np

from minrnn.data.batches import Batch, step_rng

_TRAIN_STREAM, _EVAL_STREAM = 0, 1
# The official test lengths end at 256: the default bound on majority_count's counts.
DEFAULT_MAX_LEN = 256

# (symbols (n,), cut) -> (row (width,), answer (k,)): the answer is read at the row's last k
# positions. `cut` is used by missing_duplicate only.
Layout = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Language:
  """A task: its input symbols, answer classes, row layout and the official file it follows.

  `num_answers` is None where the answers are counts, which grow with the string length.
  """

  num_symbols: int
  num_answers: int | None
  layout: Layout
  source: str
  answers_per_symbol: bool = False  # One answer per input symbol (bucket_sort).

  @property
  def empty(self) -> int:
    return self.num_symbols


def _then_empty(symbols: np.ndarray, empty: int, count: int = 1) -> np.ndarray:
  return np.concatenate([symbols, np.full(count, empty, symbols.dtype)])


def _single_answer(num_symbols: int, label: Callable[[np.ndarray], int]) -> Layout:
  """The layout of a one-answer task: the string, then one EMPTY where the answer is read."""
  return lambda s, cut: (_then_empty(s, num_symbols), np.array([label(s)], s.dtype))


def _parity_check(s: np.ndarray) -> int:
  return int(s.sum()) % 2


def _even_pairs(s: np.ndarray) -> int:
  return int(np.count_nonzero(s[1:] != s[:-1])) % 2


def _cycle_nav(s: np.ndarray) -> int:
  return int((s - 1).sum()) % 5  # Python's % keeps the position in 0-4 for negative sums.


def _majority(s: np.ndarray) -> int:
  counts = np.bincount(s, minlength=63)
  # argmax returns the first maximum; searching the reversed counts makes ties go to the
  # larger symbol, as the official code's `count + 0.001 * symbol` does.
  return len(counts) - 1 - int(np.argmax(counts[::-1]))


def _majority_count(s: np.ndarray) -> int:
  return int(np.bincount(s).max())


def _bucket_sort(s: np.ndarray, cut: int) -> tuple[np.ndarray, np.ndarray]:
  # EMPTY = 10 (symbols 0-9); one EMPTY per answer symbol, each scored.
  return _then_empty(s, 10, len(s)), np.sort(s)


def _missing_duplicate(s: np.ndarray, cut: int) -> tuple[np.ndarray, np.ndarray]:
  # EMPTY = 9 (symbols 0-8): it follows the prefix, where the next symbol would be `s[cut]`.
  return _then_empty(np.concatenate([s, s[:cut]]), 9), s[cut:cut + 1]


_OFFICIAL = "BorealisAI/minRNNs:data/"
LANGUAGES: dict[str, Language] = {
    "parity_check": Language(2, 2, _single_answer(2, _parity_check),
                             _OFFICIAL + "parity_check.py"),
    "even_pairs": Language(2, 2, _single_answer(2, _even_pairs), _OFFICIAL + "even_pairs.py"),
    "cycle_nav": Language(3, 5, _single_answer(3, _cycle_nav), _OFFICIAL + "cycle_nav.py"),
    "bucket_sort": Language(10, 10, _bucket_sort, _OFFICIAL + "bucket_sort.py",
                            answers_per_symbol=True),
    "majority": Language(63, 63, _single_answer(63, _majority), _OFFICIAL + "majority.py"),
    "majority_count": Language(63, None, _single_answer(63, _majority_count),
                               _OFFICIAL + "majority_count.py"),
    "missing_duplicate": Language(9, 9, _missing_duplicate,
                                  _OFFICIAL + "missing_duplicate.py"),
}


def language(name: str) -> Language:
  """The task called `name`; a ValueError lists the known ones otherwise."""
  if name not in LANGUAGES:
    raise ValueError(f"Unknown formal-language task {name!r}; choose one of {sorted(LANGUAGES)}.")
  return LANGUAGES[name]


def example(name: str, symbols, cut: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """The int32 row `(width,)` of task `name` for a string of `symbols`, and its answer `(k,)`.

  The answer is scored at the row's last `k` positions. `cut` is `missing_duplicate`'s
  prefix length, in `[0, len(symbols) - 1]`; the other tasks ignore it.
  """
  lang = language(name)
  s = np.asarray(symbols, np.int32)
  if s.ndim != 1 or not len(s) or s.min() < 0 or s.max() >= lang.num_symbols:
    raise ValueError(f"{name} needs a non-empty string of symbols 0..{lang.num_symbols - 1}, "
                     f"got {s.tolist()}.")
  if not 0 <= cut < len(s):
    raise ValueError(f"cut must be in [0, {len(s) - 1}], got {cut}.")
  return lang.layout(s, cut)


def vocab_size(name: str, max_len: int = DEFAULT_MAX_LEN) -> int:
  """Token ids a model of task `name` needs: the inputs with EMPTY, and the answer classes.

  majority_count's answer `c` is token id `c`, so strings of up to `max_len` symbols need ids
  up to `max_len`.
  """
  lang = language(name)
  answers = max_len + 1 if lang.num_answers is None else lang.num_answers
  return max(lang.num_symbols + 1, answers)


def row_width(name: str, max_len: int) -> int:
  """Length of every row of a batch whose strings are at most `max_len` long."""
  # bucket_sort: n symbols and n EMPTY; missing_duplicate: n + (at most n - 1) + one EMPTY.
  return 2 * max_len if name in ("bucket_sort", "missing_duplicate") else max_len + 1


def majority_answer_rate(batches: Iterable[Batch]) -> float:
  """The share of scored positions (weight > 0) whose answer is the most frequent answer of
  `batches`: the accuracy of always giving that answer, the task's chance level."""
  counts: dict[int, float] = {}
  for batch in batches:
    scored = batch["weights"] > 0
    answers, n = np.unique(batch["targets"][scored], return_counts=True)
    for answer, count in zip(answers.tolist(), n.tolist()):
      counts[answer] = counts.get(answer, 0) + count
  if not counts:
    raise ValueError("No scored positions (weights > 0) in the batches.")
  return max(counts.values()) / sum(counts.values())


def scaled_accuracy(accuracy: float, chance: float) -> float:
  """xLSTM's Figure 4 score `(accuracy - chance) / (1 - chance)`: 0 at chance, 1 when perfect,
  negative below chance."""
  if not 0.0 <= chance < 1.0:
    raise ValueError(f"chance must be in [0, 1), got {chance}.")
  return (accuracy - chance) / (1.0 - chance)


def generate(name: str, rng: np.random.Generator, *, batch_size: int, min_len: int,
             max_len: int) -> Batch:
  """One batch of task `name`, string lengths uniform in `[min_len, max_len]` for every row.

  Returns int32 `inputs`/`targets` and float32 `weights`, all `(batch_size, row_width)`;
  weights are 1 exactly at the scored positions, where `targets` holds the answer (0
  elsewhere). Inputs after a row's own end are EMPTY.
  """
  lang = language(name)
  if not 1 <= min_len <= max_len:
    raise ValueError(f"Lengths need 1 <= min_len <= max_len, got min_len={min_len}, "
                     f"max_len={max_len}.")
  width = row_width(name, max_len)
  inputs = np.full((batch_size, width), lang.empty, np.int32)
  targets = np.zeros((batch_size, width), np.int32)
  weights = np.zeros((batch_size, width), np.float32)
  for row, n in enumerate(rng.integers(min_len, max_len + 1, batch_size)):
    symbols = rng.integers(0, lang.num_symbols, int(n))
    cut = int(rng.integers(0, n)) if name == "missing_duplicate" else 0
    tokens, answer = lang.layout(symbols.astype(np.int32), cut)
    end, k = len(tokens), len(answer)
    inputs[row, :end] = tokens
    targets[row, end - k:end] = answer
    weights[row, end - k:end] = 1.0
  return {"inputs": inputs, "targets": targets, "weights": weights}


class FormalLanguage:
  """Batches of one formal-language task, determined by `(seed, step)`.

  Args:
    task: a name in `LANGUAGES`.
    batch_size: rows per batch.
    seed: with the step number, determines every batch.
    eval_batches: number of evaluation batches (from a stream training never uses).
    min_len, max_len: training string lengths.
    eval_min_len, eval_max_len: evaluation string lengths.
  """

  def __init__(self, *, task: str, batch_size: int, seed: int, eval_batches: int,
               min_len: int = 1, max_len: int = 40, eval_min_len: int = 40,
               eval_max_len: int = 256):
    self.name = task
    # Large enough for every answer of both splits (majority_count's counts grow with n).
    self.vocab_size = vocab_size(task, max(max_len, eval_max_len))
    self.batch_size = batch_size
    self.seed = seed
    self.num_eval_batches = eval_batches
    self.train_lengths = (min_len, max_len)
    self.eval_lengths = (eval_min_len, eval_max_len)
    for lo, hi in (self.train_lengths, self.eval_lengths):
      generate(task, step_rng(seed, _TRAIN_STREAM, 0), batch_size=1, min_len=lo,
               max_len=hi)  # Fails early on bad settings.

  def train_batch(self, step: int) -> Batch:
    lo, hi = self.train_lengths
    return generate(self.name, step_rng(self.seed, _TRAIN_STREAM, step),
                    batch_size=self.batch_size, min_len=lo, max_len=hi)

  def eval_batches(self) -> Iterator[Batch]:
    lo, hi = self.eval_lengths
    for i in range(self.num_eval_batches):
      yield generate(self.name, step_rng(self.seed, _EVAL_STREAM, i),
                     batch_size=self.batch_size, min_len=lo, max_len=hi)

  def decode(self, ids) -> str:
    """Input ids as text: symbols as numbers, EMPTY as `_`."""
    empty = language(self.name).empty
    return " ".join("_" if int(i) == empty else str(int(i)) for i in ids)
