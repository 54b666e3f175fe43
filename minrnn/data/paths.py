"""Where data files live: the one rule every dataset in minrnn follows.

The data directory is, in order: the config's `data.dir`; else the environment variable
`MINRNN_DATA_DIR`; else a per-user cache (`$XDG_CACHE_HOME/minrnn/data`, by default
`~/.cache/minrnn/data`). A dataset file sits at a fixed path relative to that directory.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
import urllib.request

ENV_VAR = "MINRNN_DATA_DIR"
# Where a dataset is read from: its original files by the rule above, or a dataset prepared by
# TensorFlow Datasets (`minrnn.data.from_tfds`).
SOURCES = ("files", "tfds")
# Machines without internet should fail fast rather than hang on a download.
DOWNLOAD_TIMEOUT_S = 10.0


def user_cache_dir() -> pathlib.Path:
  """The per-user fallback data directory."""
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return pathlib.Path(cache) / "minrnn" / "data"


def data_dir(configured: str | os.PathLike | None = None) -> pathlib.Path:
  """The data directory: `configured` if given, else `$MINRNN_DATA_DIR`, else the user cache."""
  if configured:
    return pathlib.Path(configured).expanduser()
  if os.environ.get(ENV_VAR):
    return pathlib.Path(os.environ[ENV_VAR]).expanduser()
  return user_cache_dir()


def check_source(source: str) -> None:
  """A ValueError unless `source` (a config's `data.source`) is one of `SOURCES`."""
  if source not in SOURCES:
    raise ValueError(f"Unknown data source {source!r} (data.source); choose one of {SOURCES}.")


def sha256_of(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def fetch_file(
    relative_path: str,
    *,
    url: str,
    sha256: str,
    configured_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> pathlib.Path:
  """Returns the path of a dataset file, downloading it (checksum verified) if it is missing.

  Args:
    relative_path: the file's path inside the data directory, e.g. `tinyshakespeare/input.txt`.
    url: where the file can be downloaded from.
    sha256: the file's expected SHA-256 (hex).
    configured_dir: the config's `data.dir`, or None to use the rule above.
    download: try to download a missing file; with False a missing file is an error at once.

  Raises:
    FileNotFoundError: the file is missing and could not be downloaded; the message names
      the expected path and how to get the file.
    ValueError: the file (found or downloaded) does not have the expected checksum.
  """
  root = data_dir(configured_dir)
  path = root / relative_path
  if path.exists():
    _verify(path, sha256, url)
    return path
  reason = "downloading is off (data.download=False)"
  if download:
    try:
      _download(url, path, sha256)
      return path
    except OSError as e:
      reason = f"the download from {url} failed ({e})"
  raise FileNotFoundError(
      f"Data file not found: {path} ({reason}).\n"
      f"Get it with, e.g., `curl -L -o {path} {url}` (sha256 {sha256}), or point minrnn at a "
      f"directory that holds {relative_path}: set --config.data.dir=DIR or the environment "
      f"variable {ENV_VAR}=DIR. Without either, the data directory is {user_cache_dir()}."
  )


def _verify(path: pathlib.Path, sha256: str, url: str) -> None:
  actual = sha256_of(path)
  if actual != sha256:
    raise ValueError(
        f"{path} has sha256 {actual}, expected {sha256}: the file is damaged or a different "
        f"version. Delete it and download it again from {url}."
    )


def _download(url: str, path: pathlib.Path, sha256: str) -> None:
  # Held in memory and checked before anything is written: a failed or wrong download leaves
  # the data directory as it was (no folder, no partial file).
  with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
    data = response.read()
  actual = hashlib.sha256(data).hexdigest()
  if actual != sha256:
    raise ValueError(f"The download from {url} has sha256 {actual}, expected {sha256}: it is "
                     f"not the expected file, so nothing was written to {path.parent}.")
  path.parent.mkdir(parents=True, exist_ok=True)
  # Written next to its final place and renamed, so an interrupted write leaves no half file
  # behind under the real name.
  with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
    try:
      tmp.write(data)
      tmp.close()
      os.replace(tmp.name, path)
    finally:
      if os.path.exists(tmp.name):
        os.unlink(tmp.name)
