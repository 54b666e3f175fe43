"""Tiny Shakespeare at character level, with nanoGPT's `shakespeare_char` split.

The file is Karpathy's char-rnn `tinyshakespeare/input.txt` (1,115,394 ASCII characters). The
vocabulary is its 65 distinct characters sorted (`\\n` = 0, space = 1); the first 90% of the
text is the training split and the last 10% the validation split (`split="nanogpt"`, the
paper's). The same text can come from TensorFlow Datasets' prepared `tiny_shakespeare`
(`source="tfds"`, `minrnn.data.from_tfds`), whose own split (`split="tfds"`) trains on the same
90% and evaluates on its `validation` part, the first half of nanoGPT's validation split.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence

import numpy as np

from minrnn.data import from_tfds
from minrnn.data.paths import check_source, fetch_file
from minrnn.data.batches import Batch, step_rng

RELATIVE_PATH = "tinyshakespeare/input.txt"
URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TRAIN_FRACTION = 0.9
SPLITS = ("nanogpt", "tfds")
_TRAIN_STREAM = 0


@dataclasses.dataclass(frozen=True)
class CharVocab:
  """A character vocabulary: `chars[i]` is the character with id `i`."""

  chars: str

  @property
  def size(self) -> int:
    return len(self.chars)

  def encode(self, text: str) -> np.ndarray:
    """Text as int32 ids `(len(text),)`; a ValueError names characters outside the vocabulary."""
    index = {c: i for i, c in enumerate(self.chars)}
    unknown = sorted(set(text) - set(index))
    if unknown:
      raise ValueError(
          f"Characters {unknown!r} are not in the vocabulary of {self.size} characters "
          f"{self.chars!r}; remove them from the text."
      )
    return np.array([index[c] for c in text], np.int32)

  def decode(self, ids: Sequence[int] | np.ndarray) -> str:
    return "".join(self.chars[int(i)] for i in ids)

  def to_json(self) -> dict[str, str]:
    """The saved form (`minrnn.data.vocab.from_json`)."""
    return {"kind": "chars", "chars": self.chars}


def load_text(data_dir: str | os.PathLike | None = None, download: bool = True) -> str:
  """The whole text, located by the data-directory rule (see `minrnn.data.paths`)."""
  path = fetch_file(RELATIVE_PATH, url=URL, sha256=SHA256, configured_dir=data_dir,
                    download=download)
  return path.read_text(encoding="ascii")


def split(text: str) -> tuple[CharVocab, np.ndarray, np.ndarray]:
  """`(vocab, train_ids, val_ids)`: nanoGPT's split, first 90% train, last 10% validation."""
  vocab = CharVocab("".join(sorted(set(text))))
  ids = vocab.encode(text)
  n = int(TRAIN_FRACTION * len(ids))
  return vocab, ids[:n], ids[n:]


def read_splits(*, source: str = "files", split_name: str = "nanogpt",
                data_dir: str | os.PathLike | None = None, download: bool = True,
                tfds_name: str = from_tfds.TINY_SHAKESPEARE,
                tfds_dir: str | os.PathLike | None = None
                ) -> tuple[CharVocab, np.ndarray, np.ndarray]:
  """`(vocab, train_ids, val_ids)` (int32 ids) of the text from `source`, split by `split_name`.

  Args:
    source: "files" (`input.txt` by the data-directory rule) or "tfds" (a prepared TFDS
      dataset `tfds_name` under `tfds_dir`; see `minrnn.data.from_tfds`).
    split_name: "nanogpt" (first 90% / last 10%, the paper's) or "tfds" (TFDS's train /
      validation; needs `source="tfds"`).
  """
  check_source(source)
  if split_name not in SPLITS:
    raise ValueError(f"Unknown Tiny Shakespeare split {split_name!r} (data.split); choose one "
                     f"of {SPLITS}.")
  if source == "files":
    if split_name != "nanogpt":
      raise ValueError("data.split='tfds' names TFDS's own split: it needs data.source='tfds'.")
    return split(load_text(data_dir, download))
  if split_name == "nanogpt":
    return split(from_tfds.read_tiny_shakespeare_text(tfds_dir, tfds_name))
  texts = from_tfds.read_tiny_shakespeare_splits(tfds_dir, tfds_name)
  vocab, _, _ = split("".join(texts.values()))
  return vocab, vocab.encode(texts["train"]), vocab.encode(texts["validation"])


class ShakespeareChar:
  """Next-character prediction on random windows (training) and the whole validation split.

  Args:
    vocab, train_ids, val_ids: the splits, int32 ids (`read_splits`).
    batch_size: rows per batch.
    seq_len: characters per row (the context length).
    seed: with the step number, determines every training batch.
    max_eval_batches: evaluate on at most this many batches (None: the whole split).
  """

  name = "shakespeare"

  def __init__(self, *, vocab: CharVocab, train_ids: np.ndarray, val_ids: np.ndarray,
               batch_size: int, seq_len: int, seed: int, max_eval_batches: int | None = None):
    self.vocab, self.train_ids, self.val_ids = vocab, train_ids, val_ids
    for name, ids in (("training", self.train_ids), ("validation", self.val_ids)):
      if len(ids) <= seq_len:
        raise ValueError(
            f"seq_len={seq_len} is longer than the {name} split ({len(ids)} characters).")
    self.vocab_size = self.vocab.size
    self.batch_size = batch_size
    self.seq_len = seq_len
    self.seed = seed
    self.max_eval_batches = max_eval_batches

  def train_batch(self, step: int) -> Batch:
    rng = step_rng(self.seed, _TRAIN_STREAM, step)
    starts = rng.integers(0, len(self.train_ids) - self.seq_len, self.batch_size)
    return _windows(self.train_ids, starts, self.seq_len)

  def eval_batches(self) -> Iterator[Batch]:
    # Non-overlapping windows over the whole split, in order; the last batch is filled with
    # zero-weight rows so that every batch has the same shape (one compilation).
    starts = np.arange(0, len(self.val_ids) - self.seq_len, self.seq_len)
    num_batches = -(-len(starts) // self.batch_size)
    if self.max_eval_batches is not None:
      num_batches = min(num_batches, self.max_eval_batches)
    for i in range(num_batches):
      chunk = starts[i * self.batch_size:(i + 1) * self.batch_size]
      batch = _windows(self.val_ids, np.resize(chunk, self.batch_size), self.seq_len)
      batch["weights"][len(chunk):] = 0.0
      yield batch

  def decode(self, ids) -> str:
    return self.vocab.decode(ids)

  def encode(self, text: str) -> np.ndarray:
    return self.vocab.encode(text)


def _windows(ids: np.ndarray, starts: np.ndarray, seq_len: int) -> Batch:
  offsets = starts[:, None] + np.arange(seq_len + 1)[None, :]
  tokens = ids[offsets]
  return {
      "inputs": tokens[:, :-1].astype(np.int32),
      "targets": tokens[:, 1:].astype(np.int32),
      "weights": np.ones((len(starts), seq_len), np.float32),
  }

