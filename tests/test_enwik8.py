"""enwik8 reader on files in the upstream format (a zip holding `enwik8`), and the SRU++ config
end to end from the command line."""

import json
import os
import pathlib
import zipfile

import numpy as np
import pytest

from minrnn.data import enwik8
# XML-like bytes, including non-ASCII UTF-8, as in the dump.
TEXT = ("<page>\n  <title>Zürich</title>\n  <text>[[Category:Cities]] &amp; 100 km²</text>\n"
        "</page>\n").encode() * 150


def write_zip(root: pathlib.Path, data: bytes = TEXT) -> pathlib.Path:
  (root / "enwik8").mkdir(parents=True, exist_ok=True)
  with zipfile.ZipFile(root / "enwik8" / "enwik8.zip", "w", zipfile.ZIP_DEFLATED) as archive:
    archive.writestr("enwik8", data)
  return root


def test_the_real_file_splits_90_5_5_million():
  assert enwik8.split_sizes(100_000_000) == (90_000_000, 5_000_000, 5_000_000)
  assert enwik8.split_sizes(len(TEXT)) == (len(TEXT) - 2 * (len(TEXT) // 20),
                                           len(TEXT) // 20, len(TEXT) // 20)


def test_zip_round_trip_split_sizes_and_memory_mapped_cache(tmp_path):
  root = write_zip(tmp_path / "data")
  splits = enwik8.load_splits(root, download=False, verify_checksum=False)
  sizes = enwik8.split_sizes(len(TEXT))
  assert tuple(len(splits[s]) for s in ("train", "valid", "test")) == sizes
  assert all(isinstance(a, np.memmap) and a.dtype == np.uint8 for a in splits.values())
  joined = b"".join(bytes(splits[s]) for s in ("train", "valid", "test"))
  assert joined == TEXT
  assert enwik8.decode(splits["train"][:60]) == TEXT[:60].decode()
  np.testing.assert_array_equal(enwik8.encode(TEXT[:60].decode()), splits["train"][:60])
  caches = list((root / "enwik8").glob("enwik8.*.u8"))
  assert len(caches) == 1  # Decompressed once, next to the (writable) zip...
  mtime = caches[0].stat().st_mtime_ns
  enwik8.load_splits(root, download=False, verify_checksum=False)
  assert caches[0].stat().st_mtime_ns == mtime  # ...and reused.


def test_read_only_data_dir_is_never_written(tmp_path, monkeypatch):
  root = write_zip(tmp_path / "data")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  # Permission bits do not stop root (as in containers): report the data dir read-only instead.
  access = os.access
  monkeypatch.setattr(os, "access", lambda path, mode: (
      access(path, mode) and not pathlib.Path(path).is_relative_to(root)))
  splits = enwik8.load_splits(root, download=False, verify_checksum=False)
  assert bytes(splits["test"]) == TEXT[-(len(TEXT) // 20):]
  assert sorted(p.name for p in (root / "enwik8").iterdir()) == ["enwik8.zip"]
  assert list((tmp_path / "cache").rglob("enwik8.*.u8"))


def test_raw_file_is_read_in_place(tmp_path):
  (tmp_path / "enwik8").mkdir()
  (tmp_path / "enwik8" / "enwik8").write_bytes(TEXT)
  splits = enwik8.load_splits(tmp_path, download=False, verify_checksum=False)
  assert bytes(splits["valid"]) == TEXT[enwik8.split_sizes(len(TEXT))[0]:][:len(TEXT) // 20]
  assert sorted(p.name for p in (tmp_path / "enwik8").iterdir()) == ["enwik8"]


def test_wrong_or_missing_files_are_explained(tmp_path):
  root = write_zip(tmp_path / "data")
  with pytest.raises(ValueError, match="enwik8 has 100,000,000.*verify_checksum=False"):
    enwik8.load_splits(root, download=False)
  with pytest.raises(FileNotFoundError, match=r"(?s)enwik8/enwik8\.zip.*mattmahoney.*sha256"):
    enwik8.load_splits(tmp_path / "empty", download=False)
  with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
    archive.writestr("enwik9", b"x")
  (tmp_path / "bad" / "enwik8").mkdir(parents=True)
  os.replace(tmp_path / "other.zip", tmp_path / "bad" / "enwik8" / "enwik8.zip")
  with pytest.raises(ValueError, match="no member named 'enwik8'"):
    enwik8.load_splits(tmp_path / "bad", download=False, verify_checksum=False)


def test_srupp_config_trains_end_to_end_from_the_command_line(run_cli, tmp_path):
  root = write_zip(tmp_path / "data")
  run = run_cli("train", "--config", "configs/enwik8.py:srupp,cpu",
                f"--config.data.dir={root}", "--config.data.verify_checksum=False",
                "--config.train.num_steps=6", "--config.train.eval_every=6",
                "--config.train.progress_bar=False", f"--workdir={tmp_path / 'run'}")
  assert run.returncode == 0, run.stderr[-3000:]
  assert "bits_per_token" in run.stdout and "test" in run.stdout
  result = json.loads((tmp_path / "run" / "final_eval.json").read_text())
  assert result["step"] == 6 and result["cell"] == "srupp"
  assert set(result["splits"]) == {"test"}
  # Byte-level: 8 bits is a uniform guess over 256 bytes; even 6 steps beat it.
  assert result["eval"]["bits_per_token"] < 8.0
