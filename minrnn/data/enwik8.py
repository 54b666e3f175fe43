"""enwik8: the first 10^8 bytes of an English Wikipedia XML dump (Hutter Prize), byte level.

The file is `enwik8/enwik8` (100,000,000 bytes) or the zip it is distributed as,
`enwik8/enwik8.zip`, in the data directory (`minrnn.data.paths`). Token ids are the bytes
(vocabulary 256). The standard split is train = the first 90,000,000 bytes, valid = the next
5,000,000, test = the last 5,000,000; for a file of another size (a test fixture) the same
proportions are used: valid = test = size // 20. Results are bits per character (= per byte).

A raw file is memory-mapped where it lies. A zip is decompressed once into a cache file, which
is then memory-mapped: the cache sits next to the zip when that directory is writable, else in
the user cache directory (or `cache_dir`); the data directory itself is never written to
unless it is writable.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
import urllib.request
import zipfile

import numpy as np

from minrnn.data.paths import DOWNLOAD_TIMEOUT_S, ENV_VAR, data_dir, user_cache_dir

RAW_PATH = "enwik8/enwik8"
ZIP_PATH = "enwik8/enwik8.zip"
URL = "http://mattmahoney.net/dc/enwik8.zip"
SIZE = 100_000_000
SHA256 = "2b49720ec4d78c3c9fabaee6e4179a5e997302b3a70029f30f2d582218c024a8"
VOCAB_SIZE = 256


def split_sizes(total: int) -> tuple[int, int, int]:
  """`(train, valid, test)` sizes: 90M / 5M / 5M for the real file, the same shares otherwise."""
  held_out = total // 20
  return total - 2 * held_out, held_out, held_out


def default_cache_dir(source: pathlib.Path) -> pathlib.Path:
  """Next to `source` if that directory is writable, else the user cache directory."""
  if os.access(source.parent, os.W_OK):
    return source.parent
  return user_cache_dir().parent / "cache" / "enwik8"


def _missing(root: pathlib.Path, reason: str) -> FileNotFoundError:
  return FileNotFoundError(
      f"enwik8 not found: neither {root / RAW_PATH} nor {root / ZIP_PATH} exists ({reason}).\n"
      f"Get it with `mkdir -p {root / 'enwik8'} && curl -L -o {root / ZIP_PATH} {URL}` (the "
      f"file inside, `enwik8`, has {SIZE:,} bytes and sha256 {SHA256}), or point minrnn at a "
      f"directory holding {ZIP_PATH} or {RAW_PATH}: --config.data.dir=DIR or {ENV_VAR}=DIR.")


def _download_zip(path: pathlib.Path) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
    try:
      with urllib.request.urlopen(URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
        tmp.write(response.read())
      tmp.close()
      os.replace(tmp.name, path)
    finally:
      if os.path.exists(tmp.name):
        os.unlink(tmp.name)


def _check(data: np.ndarray, source: pathlib.Path, verify: bool) -> None:
  if not verify:
    return
  if len(data) != SIZE:
    raise ValueError(
        f"{source} holds {len(data):,} bytes; enwik8 has {SIZE:,}. Use the real file, or set "
        "data.verify_checksum=False to train on a different file (e.g. a small one in the same "
        "format); its split then keeps the 90/5/5 shares.")
  digest = hashlib.sha256(memoryview(data)).hexdigest()
  if digest != SHA256:
    raise ValueError(f"{source} has sha256 {digest}, expected {SHA256}: the file is damaged or "
                     f"a different version. Download it again from {URL}.")


def _cached_zip_member(zip_path: pathlib.Path, cache_dir: pathlib.Path) -> pathlib.Path:
  stat = zip_path.stat()
  cache = cache_dir / f"enwik8.{stat.st_size}.{stat.st_mtime_ns}.u8"
  if cache.exists():
    return cache
  with zipfile.ZipFile(zip_path) as archive:
    if "enwik8" not in archive.namelist():
      raise ValueError(f"{zip_path} has no member named 'enwik8' (it has "
                       f"{archive.namelist()[:5]}); is it the enwik8 zip from {URL}?")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name first: a half-written cache is never mistaken for one.
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as tmp:
      try:
        with archive.open("enwik8") as member:
          while chunk := member.read(1 << 24):
            tmp.write(chunk)
        tmp.close()
        os.replace(tmp.name, cache)
      finally:
        if os.path.exists(tmp.name):
          os.unlink(tmp.name)
  return cache


def load_splits(configured_dir: str | os.PathLike | None = None, *, download: bool = True,
                verify_checksum: bool = True, cache_dir: str | os.PathLike | None = None
                ) -> dict[str, np.ndarray]:
  """`{"train", "valid", "test"}`: memory-mapped uint8 arrays of byte ids (views of one map).

  Args:
    configured_dir: the config's `data.dir` (None: `$MINRNN_DATA_DIR`, then the user cache).
    download: download the zip when neither file is present.
    verify_checksum: require the real file (size and sha256).
    cache_dir: where the zip is decompressed (None: see `default_cache_dir`).
  """
  root = data_dir(configured_dir)
  raw, zipped = root / RAW_PATH, root / ZIP_PATH
  if raw.exists():
    source = path = raw
  else:
    if not zipped.exists():
      if not download:
        raise _missing(root, "downloading is off (data.download=False)")
      try:
        _download_zip(zipped)
      except OSError as e:
        raise _missing(root, f"the download from {URL} failed ({e})") from e
    source = zipped
    path = _cached_zip_member(zipped, pathlib.Path(cache_dir) if cache_dir
                              else default_cache_dir(zipped))
  data = np.memmap(path, dtype=np.uint8, mode="r")
  _check(data, source, verify_checksum)
  train, valid, _ = split_sizes(len(data))
  return {"train": data[:train], "valid": data[train:train + valid],
          "test": data[train + valid:]}


def decode(ids) -> str:
  return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


def encode(text: str) -> np.ndarray:
  """UTF-8 bytes as int32 ids."""
  return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)
