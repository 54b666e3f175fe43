"""Formal-language generators: answers are right, lengths as asked, batches reproducible."""

import numpy as np
import pytest

from minrnn.data import formal_languages as fl
from minrnn.data import make_task
from minrnn.run_config import load_config


def _examples(name, batch):
  """(string symbols, answer symbols) of every row, decoded back to local indices."""
  lang = fl.language(name)
  answer_base = 3 + lang.num_symbols
  for inputs, targets, weights in zip(batch["inputs"], batch["targets"], batch["weights"]):
    scored = weights > 0
    string = inputs[:np.argmax(inputs == fl.QUERY)]
    yield string, targets[scored] - answer_base


def _reference_answer(name, s):
  """Each task's answer computed a second, independent way (strings of local symbols)."""
  text = "".join("_" if t == fl.PLACEHOLDER else chr(ord("a") + t - 3) for t in s)
  if name == "parity":
    return [text.count("b") % 2]
  if name == "even_pairs":
    return [(text.count("ab") + text.count("ba")) % 2]
  if name == "cycle_navigation":
    return [(text.count("b") - text.count("c")) % 5]
  if name == "bucket_sort":
    return [ord(c) - ord("a") for c in sorted(text)]
  counts = [text.count(c) for c in "abcdefgh"]
  if name == "majority":
    return [counts.index(max(counts))]
  if name == "majority_count":
    return [max(counts) % 10]
  if name == "missing_duplicate":
    half = len(text) // 2
    return [ord(text[text.index("_") - half]) - ord("a")]
  raise AssertionError(name)


@pytest.mark.parametrize("name", sorted(fl.LANGUAGES))
def test_answers_lengths_and_layout(name):
  batch = fl.generate(name, np.random.default_rng(0), batch_size=64, min_len=1, max_len=40)
  width = fl.row_width(name, 40)
  assert all(v.shape == (64, width) for v in batch.values())
  assert batch["inputs"].max() < fl.vocab_size(name)
  assert batch["targets"].max() < fl.vocab_size(name)
  lengths = []
  for string, answer in _examples(name, batch):
    lengths.append(len(string))
    assert list(answer) == _reference_answer(name, string), (name, string)
  assert 1 <= min(lengths) and max(lengths) <= 40
  assert len(set(lengths)) > 10  # Lengths vary across the batch.


def test_even_pairs_examples():
  # "abba": ab, bb, ba -> 2 pairs (even); "ab": 1 pair (odd).
  assert _reference_answer("even_pairs", np.array([3, 4, 4, 3])) == [0]
  s, answer = fl._even_pairs(np.random.default_rng(0), 30)
  assert answer[0] == int(s[0] != s[-1])


def test_task_from_config_is_deterministic_and_splits_lengths():
  config = load_config("configs/formal_languages/mingru.py", "cpu")
  config.data.task = "bucket_sort"
  task = make_task(config.data, seed=3)
  again = make_task(config.data, seed=3)
  for key in ("inputs", "targets", "weights"):
    np.testing.assert_array_equal(task.train_batch(5)[key], again.train_batch(5)[key])
  assert not np.array_equal(task.train_batch(5)["inputs"], task.train_batch(6)["inputs"])
  evals = list(task.eval_batches())
  assert len(evals) == config.data.eval_batches
  lengths = [len(s) for b in evals for s, _ in _examples("bucket_sort", b)]
  assert min(lengths) >= 40 and max(lengths) <= 256
  assert task.vocab_size == fl.vocab_size("bucket_sort")


def test_bad_settings_are_clear_errors():
  with pytest.raises(ValueError, match="choose one of"):
    fl.language("palindrome")
  with pytest.raises(ValueError, match="min_len"):
    fl.generate("parity", np.random.default_rng(0), batch_size=1, min_len=5, max_len=2)
