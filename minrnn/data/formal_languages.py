"""Formal-language tasks for length generalisation: train on short strings, test on long ones.

The later versions of "Were RNNs All We Needed?" evaluate on tasks from "Neural Networks and the
Chomsky Hierarchy" (Delétang et al., 2023) and the xLSTM paper's formal-language set. These are
minrnn's own generators for them, written from the tasks' descriptions (not the official code):

- `parity`: a string over {a, b}; answer whether the number of b's is even or odd.
- `even_pairs`: a string over {a, b}; answer whether the number of "ab" and "ba" substrings
  together is even (it is exactly when the first and last symbols agree).
- `cycle_navigation`: moves in {stay, +1, -1} on a cycle of 5 positions from position 0;
  answer the final position.
- `bucket_sort`: a string over 5 ordered symbols; answer the same symbols sorted (one output
  per input symbol).
- `majority`: a string over 8 symbols; answer the most frequent one (ties: the lowest id).
- `majority_count`: a string over 8 symbols; answer the count of the most frequent symbol
  modulo 10 (our choice: the count itself has classes never seen in training).
- `missing_duplicate`: a binary string `w` followed by a copy of `w` with one symbol replaced
  by a placeholder; answer the missing symbol.

A row is the task's string, then one query token per answer symbol, then padding. Only the
query positions are scored (weights 1), so `accuracy` counts answer symbols and
`sequence_accuracy` whole answers. Token ids: 0 padding, 1 query, 2 the placeholder of
`missing_duplicate`, then the input symbols, then the answer symbols. Training strings have
lengths drawn uniformly from `[min_len, max_len]` (1-40 by default) for every step; the
evaluation set is fixed and has lengths in `[eval_min_len, eval_max_len]` (40-256).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import numpy as np

from minrnn.data.task import Batch, step_rng

PAD, QUERY, PLACEHOLDER = 0, 1, 2
_FIRST_SYMBOL = 3
_TRAIN_STREAM, _EVAL_STREAM = 0, 1

# (rng, length) -> (string symbols, answer symbols), both int arrays of local symbol indices.
Sampler = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Language:
  """A task: its input alphabet size, answer alphabet size, and a sampler of examples."""

  num_symbols: int
  num_answers: int
  sample: Sampler
  answers_per_symbol: bool = False  # The answer is as long as the string (bucket sort).


def _parity(rng, n):
  s = rng.integers(0, 2, n)
  return s, np.array([s.sum() % 2])


def _even_pairs(rng, n):
  s = rng.integers(0, 2, n)
  return s, np.array([np.count_nonzero(s[1:] != s[:-1]) % 2])


def _cycle_navigation(rng, n):
  moves = rng.integers(0, 3, n)  # 0: stay, 1: +1, 2: -1.
  steps = np.where(moves == 2, -1, moves)
  return moves, np.array([steps.sum() % 5])


def _bucket_sort(rng, n):
  s = rng.integers(0, 5, n)
  return s, np.sort(s)


def _counts(s):
  return np.bincount(s, minlength=8)


def _majority(rng, n):
  s = rng.integers(0, 8, n)
  return s, np.array([np.argmax(_counts(s))])


def _majority_count(rng, n):
  s = rng.integers(0, 8, n)
  return s, np.array([_counts(s).max() % 10])


def _missing_duplicate(rng, n):
  # The string is w + copy of w: strings of odd length n use |w| = n // 2 (at least 1).
  half = max(n // 2, 1)
  w = rng.integers(0, 2, half)
  hole = rng.integers(0, half)
  copy = w.copy()
  copy[hole] = -1  # Marks the placeholder; mapped to its token id below.
  return np.concatenate([w, copy]), np.array([w[hole]])


LANGUAGES: dict[str, Language] = {
    "parity": Language(2, 2, _parity),
    "even_pairs": Language(2, 2, _even_pairs),
    "cycle_navigation": Language(3, 5, _cycle_navigation),
    "bucket_sort": Language(5, 5, _bucket_sort, answers_per_symbol=True),
    "majority": Language(8, 8, _majority),
    "majority_count": Language(8, 10, _majority_count),
    "missing_duplicate": Language(2, 2, _missing_duplicate),
}


def language(name: str) -> Language:
  """The task called `name`; a ValueError lists the known ones otherwise."""
  if name not in LANGUAGES:
    raise ValueError(f"Unknown formal-language task {name!r}; choose one of {sorted(LANGUAGES)}.")
  return LANGUAGES[name]


def vocab_size(name: str) -> int:
  """Token ids a model of task `name` needs (specials, input symbols, answer symbols)."""
  lang = language(name)
  return _FIRST_SYMBOL + lang.num_symbols + lang.num_answers


def row_width(name: str, max_len: int) -> int:
  """Length of every row of a batch whose strings are at most `max_len` long."""
  # missing_duplicate rounds a length of 1 up to 2 (w and its copy).
  longest = max(max_len, 2) if name == "missing_duplicate" else max_len
  return longest + (longest if language(name).answers_per_symbol else 1)


def generate(name: str, rng: np.random.Generator, *, batch_size: int, min_len: int,
             max_len: int) -> Batch:
  """One batch of task `name`, string lengths uniform in `[min_len, max_len]`.

  Returns int32 `inputs`/`targets` and float32 `weights`, all `(batch_size, row_width)`.
  """
  lang = language(name)
  if not 1 <= min_len <= max_len:
    raise ValueError(f"Lengths need 1 <= min_len <= max_len, got min_len={min_len}, "
                     f"max_len={max_len}.")
  width = row_width(name, max_len)
  inputs = np.full((batch_size, width), PAD, np.int32)
  targets = np.zeros((batch_size, width), np.int32)
  weights = np.zeros((batch_size, width), np.float32)
  answer_base = _FIRST_SYMBOL + lang.num_symbols
  for row, n in enumerate(rng.integers(min_len, max_len + 1, batch_size)):
    string, answer = lang.sample(rng, int(n))
    tokens = np.where(string < 0, PLACEHOLDER, string + _FIRST_SYMBOL)
    end = len(tokens)
    inputs[row, :end] = tokens
    inputs[row, end:end + len(answer)] = QUERY
    targets[row, end:end + len(answer)] = answer + answer_base
    weights[row, end:end + len(answer)] = 1.0
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
    self.vocab_size = vocab_size(task)
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
    lang = language(self.name)
    answer_base = _FIRST_SYMBOL + lang.num_symbols

    def symbol(i: int) -> str:
      if i in (PAD, QUERY, PLACEHOLDER):
        return ".?_"[i]
      return str(i - _FIRST_SYMBOL) if i < answer_base else f"<{i - answer_base}>"

    return " ".join(symbol(int(i)) for i in ids)
