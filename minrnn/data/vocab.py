"""Text vocabularies as one interface (`size`, `encode(text)`, `decode(ids)`), saved with a run
(`to_json` / `from_json`) so that sampling needs the run's directory and not the dataset.

Kinds: `"chars"` (`minrnn.data.shakespeare.CharVocab`), `"words"` (`WordTextVocab`, WikiText's
words, text split at spaces), `"bytes"` (`ByteVocab`, enwik8's UTF-8 bytes).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from minrnn.data import enwik8
from minrnn.data.shakespeare import CharVocab
from minrnn.data.wikitext import WordVocab


class TextVocab(Protocol):
  """What generating text needs: ids <-> text, and a saved form."""

  size: int

  def to_json(self) -> dict[str, Any]:
    """A JSON-able description `from_json` rebuilds the vocabulary from."""

  def encode(self, text: str) -> np.ndarray:
    """int32 ids `(n,)` of `text`."""

  def decode(self, ids: Sequence[int] | np.ndarray) -> str:
    """The text of ids `(n,)`."""


class ByteVocab:
  """The 256 byte values; text is UTF-8 (enwik8)."""

  size = enwik8.VOCAB_SIZE

  def encode(self, text: str) -> np.ndarray:
    return enwik8.encode(text)

  def decode(self, ids) -> str:
    return enwik8.decode(ids)

  def to_json(self) -> dict[str, Any]:
    return {"kind": "bytes"}


class WordTextVocab:
  """WikiText's word vocabulary over text: words are separated by spaces."""

  def __init__(self, words: WordVocab):
    self.words = words
    self.size = words.size

  def encode(self, text: str) -> np.ndarray:
    return self.words.encode(text.split())

  def decode(self, ids) -> str:
    return self.words.decode(ids)

  def to_json(self) -> dict[str, Any]:
    return {"kind": "words", "words": self.words.words}


# kind -> the vocabulary from its `to_json()`.
_FROM_JSON = {
    "chars": lambda saved: CharVocab(saved["chars"]),
    "words": lambda saved: WordTextVocab(WordVocab(saved["words"])),
    "bytes": lambda saved: ByteVocab(),
}


def from_json(saved: dict[str, Any]) -> TextVocab:
  """The vocabulary a `to_json()` described."""
  kind = saved.get("kind")
  if kind not in _FROM_JSON:
    raise ValueError(f"Unknown saved vocabulary kind {kind!r}; expected one of "
                     f"{sorted(_FROM_JSON)}.")
  return _FROM_JSON[kind](saved)
