"""WikiText (Merity et al., 2016) at word level: `wiki.{train,valid,test}.tokens`.

The files are already tokenized (space-separated, rare words replaced by `<unk>`, headings as
` = Title = `). Each line, empty ones included, is split on whitespace and ends with one `<eos>`
token (the convention of Transformer-XL and SRU++: WikiText-2 valid then has 217,646 tokens and
test 245,569). The vocabulary is the training split's words sorted by falling count, ties in
order of first appearance, so that the adaptive softmax's frequency clusters are id ranges.

After the first read, the ids of each split are stored as `.npy` files and memory-mapped; the
cache sits next to the data when that directory is writable, else in the user cache directory
(or `cache_dir`). It is keyed by the files' sizes and modification times.
"""

from __future__ import annotations

import codecs
import collections
import hashlib
import json
import os
import pathlib
from typing import Iterable, Sequence

import numpy as np

from minrnn.data.paths import ENV_VAR, data_dir, user_cache_dir

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")
SUBDIRS = {"wikitext103": "wikitext-103", "wikitext2": "wikitext-2"}
URLS = {
    "wikitext103": "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip",
    "wikitext2": "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
}


def tokenize_lines(lines: Iterable[str]) -> list[str]:
  """Whitespace-split tokens of every line, each line followed by `<eos>`."""
  tokens = []
  for line in lines:
    tokens.extend(line.split())
    tokens.append(EOS)
  return tokens


def read_tokens(path: str | os.PathLike) -> list[str]:
  """The tokens of one `.tokens` file (UTF-8)."""
  return tokenize_lines(_lines(pathlib.Path(path)))


def _not_utf8(path: pathlib.Path) -> ValueError:
  """The error for a file that is not UTF-8, naming the first bad byte's offset in the file."""
  decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      pending = len(decoder.getstate()[0])
      try:
        decoder.decode(chunk)
      except UnicodeDecodeError as e:
        at = offset - pending + e.start
        return ValueError(f"{path} is not UTF-8 text: byte {at} of the file "
                          f"(0x{e.object[e.start]:02x}) cannot be decoded ({e.reason}). "
                          "WikiText's files are UTF-8; get them again or fix that byte.")
      offset += len(chunk)
  return ValueError(f"{path} is not UTF-8 text.")


def _lines(path: pathlib.Path) -> Iterable[str]:
  """The lines of a UTF-8 text file; a decoding error names the file and the byte."""
  try:
    with open(path, encoding="utf-8") as f:
      yield from f
  except UnicodeDecodeError:
    raise _not_utf8(path) from None


def _count_tokens(path: pathlib.Path) -> collections.Counter:
  # Line by line: WikiText-103's 103M training tokens as one Python list would take many GB.
  counts = collections.Counter()
  for line in _lines(path):
    counts.update(tokenize_lines([line]))
  return counts


def _encode_file(path: pathlib.Path, vocab: "WordVocab") -> np.ndarray:
  chunks = []
  for line in _lines(path):
    try:
      chunks.append(vocab.encode(tokenize_lines([line])))
    except ValueError as e:  # Words outside a vocabulary that has no <unk>.
      raise ValueError(f"{path}: {e}") from None
  return np.concatenate(chunks) if chunks else np.zeros((0,), np.int32)


class WordVocab:
  """Words by id; ids sorted by falling training count."""

  def __init__(self, words: Sequence[str]):
    self.words = list(words)
    self.index = {w: i for i, w in enumerate(self.words)}

  @classmethod
  def from_tokens(cls, tokens: Iterable[str]) -> "WordVocab":
    return cls.from_counts(collections.Counter(tokens))

  @classmethod
  def from_counts(cls, counts: collections.Counter) -> "WordVocab":
    # Counter.most_common keeps first-seen order among equal counts: a deterministic order.
    return cls([w for w, _ in counts.most_common()])

  @property
  def size(self) -> int:
    return len(self.words)

  def encode(self, tokens: Sequence[str]) -> np.ndarray:
    """int32 ids; words outside the vocabulary become `<unk>` (an error if there is none)."""
    unk = self.index.get(UNK)
    ids = np.fromiter((self.index.get(t, -1) for t in tokens), np.int32, len(tokens))
    if (ids < 0).any():
      if unk is None:
        missing = sorted({t for t in tokens if t not in self.index})[:5]
        raise ValueError(f"Words {missing} are not in the vocabulary, which has no {UNK}.")
      ids[ids < 0] = unk
    return ids

  def decode(self, ids) -> str:
    return " ".join(self.words[int(i)] for i in ids)


def _paths(dataset: str, root: pathlib.Path) -> dict[str, pathlib.Path]:
  if dataset not in SUBDIRS:
    raise ValueError(f"Unknown WikiText dataset {dataset!r}; choose one of {sorted(SUBDIRS)}.")
  paths = {s: root / SUBDIRS[dataset] / f"wiki.{s}.tokens" for s in SPLITS}
  missing = [str(p) for p in paths.values() if not p.exists()]
  if missing:
    raise FileNotFoundError(
        f"{dataset} files not found: {', '.join(missing)}.\n"
        f"Download {URLS[dataset]}, unzip it and place wiki.train.tokens, wiki.valid.tokens "
        f"and wiki.test.tokens in {root / SUBDIRS[dataset]}, or point minrnn at a directory "
        f"holding {SUBDIRS[dataset]}/: --config.data.dir=DIR or {ENV_VAR}=DIR.")
  return paths


def _cache_key(paths: dict[str, pathlib.Path]) -> str:
  stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths.values()]
  return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def _build_cache(paths: dict[str, pathlib.Path], cache: pathlib.Path) -> None:
  """Writes `cache/{split}.npy` and `cache/vocab.json`: all of it or, on an error, nothing (the
  arrays are computed before anything is written)."""
  counts = _count_tokens(paths["train"])
  if not set(counts) - {EOS}:
    raise ValueError(f"{paths['train']} holds no words: WikiText's training split, which the "
                     "vocabulary is built from, is empty. Get the file again.")
  vocab = WordVocab.from_counts(counts)
  ids = {split: _encode_file(paths[split], vocab) for split in SPLITS}
  cache.mkdir(parents=True, exist_ok=True)
  for split in SPLITS:
    np.save(cache / f"{split}.npy", ids[split])
  # The vocabulary is written last: its presence marks a complete cache.
  tmp = cache / "vocab.json.tmp"
  tmp.write_text(json.dumps(vocab.words, ensure_ascii=False), encoding="utf-8")
  os.replace(tmp, cache / "vocab.json")


def load_splits(dataset: str = "wikitext103", configured_dir: str | os.PathLike | None = None,
                *, cache_dir: str | os.PathLike | None = None
                ) -> tuple[WordVocab, dict[str, np.ndarray]]:
  """`(vocab, {"train", "valid", "test"})` with memory-mapped int32 ids per split.

  Args:
    dataset: "wikitext103" (`wikitext-103/`) or "wikitext2" (`wikitext-2/`).
    configured_dir: the config's `data.dir` (None: `$MINRNN_DATA_DIR`, then the user cache).
    cache_dir: where the id arrays go (None: next to the data if writable, else the user cache).
  """
  root = data_dir(configured_dir)
  paths = _paths(dataset, root)
  if cache_dir is None:
    folder = paths["train"].parent
    cache_dir = (folder if os.access(folder, os.W_OK)
                 else user_cache_dir().parent / "cache" / SUBDIRS[dataset])
  cache = pathlib.Path(cache_dir) / f"ids-{_cache_key(paths)}"
  vocab_file = cache / "vocab.json"
  if not vocab_file.exists():
    _build_cache(paths, cache)
  vocab = WordVocab(json.loads(vocab_file.read_text(encoding="utf-8")))
  return vocab, {s: np.load(cache / f"{s}.npy", mmap_mode="r") for s in SPLITS}
