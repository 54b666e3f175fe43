"""Data: the data-directory rule, missing-file errors, Tiny Shakespeare's split, task batches."""

import hashlib

import numpy as np
import pytest

from minrnn.data import SelectiveCopy, ShakespeareChar, paths, selective_copy, shakespeare


def test_data_dir_prefers_config_then_env_then_user_cache(monkeypatch, tmp_path):
  monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "env"))
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  assert paths.data_dir(tmp_path / "cfg") == tmp_path / "cfg"
  assert paths.data_dir(None) == tmp_path / "env"
  monkeypatch.delenv(paths.ENV_VAR)
  assert paths.data_dir(None) == tmp_path / "cache" / "minrnn" / "data"


def test_missing_file_error_names_path_and_remedy(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    shakespeare.load_text(tmp_path, download=False)
  message = str(e.value)
  assert str(tmp_path / "tinyshakespeare" / "input.txt") in message
  assert shakespeare.URL in message and "MINRNN_DATA_DIR" in message


def _file_url(tmp_path, content: bytes) -> tuple[str, str]:
  source = tmp_path / "upstream.txt"
  source.write_bytes(content)
  return source.as_uri(), hashlib.sha256(content).hexdigest()


def test_download_verifies_checksum(tmp_path):
  # A file:// URL exercises the download path without the network.
  url, digest = _file_url(tmp_path, b"to be or not to be\n")
  path = paths.fetch_file("x/y.txt", url=url, sha256=digest, configured_dir=tmp_path / "d")
  assert path.read_bytes() == b"to be or not to be\n"
  with pytest.raises(ValueError, match="sha256"):
    paths.fetch_file("x/z.txt", url=url, sha256="0" * 64, configured_dir=tmp_path / "d")
  assert not (tmp_path / "d" / "x" / "z.txt").exists()
  assert [p.name for p in (tmp_path / "d" / "x").iterdir()] == ["y.txt"]


def test_a_failed_or_wrong_download_writes_nothing_into_the_data_directory(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  with pytest.raises(FileNotFoundError, match="the download from .* failed"):
    paths.fetch_file("tinyshakespeare/input.txt", url=(tmp_path / "gone.txt").as_uri(),
                     sha256="0" * 64, configured_dir=data)
  url, _ = _file_url(tmp_path, b"not the file\n")
  with pytest.raises(ValueError, match="nothing was written"):
    paths.fetch_file("tinyshakespeare/input.txt", url=url, sha256="0" * 64,
                     configured_dir=data)
  assert list(data.iterdir()) == []


def test_shakespeare_split_matches_nanogpt():
  text = shakespeare.load_text(download=False)
  vocab, train, val = shakespeare.split(text)
  assert vocab.size == 65 and vocab.chars[:2] == "\n "
  assert (len(train), len(val)) == (1_003_854, 111_540)
  assert vocab.decode(train[:14]) == "First Citizen:"
  with pytest.raises(ValueError, match="not in the vocabulary"):
    vocab.encode("café")


def test_shakespeare_batches_are_a_function_of_seed_and_step():
  vocab, train, valid = shakespeare.read_splits(download=False)
  task = ShakespeareChar(vocab=vocab, train_ids=train, val_ids=valid, batch_size=4, seq_len=16,
                         seed=3, max_eval_batches=2)
  a, b = task.train_batch(7), task.train_batch(7)
  for key in ("inputs", "targets", "weights"):
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(task.train_batch(8)["inputs"], a["inputs"])
  # Targets are the inputs shifted by one character.
  np.testing.assert_array_equal(a["inputs"][:, 1:], a["targets"][:, :-1])
  evals = list(task.eval_batches())
  assert len(evals) == 2 and evals[0]["inputs"].shape == (4, 16)
  assert task.decode(evals[0]["inputs"][0]) == shakespeare.split(
      shakespeare.load_text(download=False))[0].decode(task.val_ids[:16])


def test_shakespeare_last_eval_batch_is_padded_with_zero_weights():
  vocab, train, valid = shakespeare.read_splits(download=False)
  task = ShakespeareChar(vocab=vocab, train_ids=train, val_ids=valid, batch_size=64,
                         seq_len=256, seed=0)
  batches = list(task.eval_batches())
  windows = (len(task.val_ids) - 1) // 256
  assert sum(b["weights"][:, 0].sum() for b in batches) == windows
  assert all(b["inputs"].shape == (64, 256) for b in batches)


def test_selective_copy_rows_hold_the_copy_task():
  task = SelectiveCopy(batch_size=8, seq_len=32, num_tokens=5, vocab_size=16, seed=1,
                       eval_batches=2)
  batch = task.train_batch(0)
  inputs, targets, weights = batch["inputs"], batch["targets"], batch["weights"]
  assert inputs.shape == targets.shape == weights.shape == (8, 37)
  marker = 15
  for row in range(8):
    context = inputs[row, :32]
    data = context[context != selective_copy.BLANK]
    assert len(data) == 5 and np.all((data >= 1) & (data < marker))
    np.testing.assert_array_equal(inputs[row, 32:], marker)
    np.testing.assert_array_equal(targets[row, 32:], data)
  np.testing.assert_array_equal(weights[:, 32:], 1.0)
  np.testing.assert_array_equal(weights[:, :32], 0.0)
  np.testing.assert_array_equal(task.train_batch(0)["inputs"], inputs)
  assert not np.array_equal(next(task.eval_batches())["inputs"], inputs)


def test_selective_copy_rejects_bad_settings():
  with pytest.raises(ValueError, match="num_tokens"):
    SelectiveCopy(batch_size=2, seq_len=4, num_tokens=5, vocab_size=16, seed=0, eval_batches=1)


def test_selective_copy_has_fixed_validation_and_test_sets():
  """The official minRNN code's fixed sets: validation from seed 0, test from seed 1, the same
  for every training seed, apart from each other and from the training batches."""
  def source(seed, **seeds):
    return SelectiveCopy(batch_size=4, seq_len=16, num_tokens=3, vocab_size=16, seed=seed,
                         eval_batches=3, **seeds)

  def rows(batches):
    return [b["inputs"] for b in batches]

  a, b = source(0), source(7)
  for split in ("valid", "test"):
    np.testing.assert_array_equal(rows(a.eval_batches(split)), rows(b.eval_batches(split)))
    assert len(rows(a.eval_batches(split))) == 3
  valid, test = rows(a.eval_batches("valid")), rows(a.eval_batches("test"))
  train = np.concatenate([a.train_batch(s)["inputs"] for s in range(200)])
  for fixed in (valid, test):
    assert not any((row == train).all(axis=1).any() for batch in fixed for row in batch)
  assert not np.array_equal(valid, test)
  np.testing.assert_array_equal(rows(source(0, val_seed=5).eval_batches("test")), test)
  assert not np.array_equal(rows(source(0, val_seed=5).eval_batches("valid")), valid)
  with pytest.raises(ValueError, match="evaluation splits .*'valid', 'test'.*got 'eval'"):
    next(a.eval_batches("eval"))
