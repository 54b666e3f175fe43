"""Formal-language generators: the official tasks' semantics on hand-worked rows, lengths as
asked, answers only at the scored positions, batches reproducible, scaled accuracy."""

import collections

import numpy as np
import pytest

from minrnn.data import formal_languages as fl
from minrnn.tasks import make_task
from minrnn.training.config import load_config

# EMPTY token of each task (the official files' VOCAB_SIZE - 1).
EMPTY = {"parity_check": 2, "even_pairs": 2, "cycle_nav": 3, "bucket_sort": 10,
         "majority": 63, "majority_count": 63, "missing_duplicate": 9}


# Rows worked out by hand: (task, string, cut, expected row, expected answer).
HAND = [
    ("parity_check", [1, 0, 1, 1], 0, [1, 0, 1, 1, 2], [1]),
    ("parity_check", [1, 1, 0], 0, [1, 1, 0, 2], [0]),
    # Unequal neighbours: 0|1 and 1|0 -> 2 pairs, even; 0|1 alone -> odd; one bit -> none.
    ("even_pairs", [0, 1, 1, 0], 0, [0, 1, 1, 0, 2], [0]),
    ("even_pairs", [0, 1, 1], 0, [0, 1, 1, 2], [1]),
    ("even_pairs", [1], 0, [1, 2], [0]),
    # Actions 0, 1, 2 move -1, 0, +1: -1 -1 +1 0 -1 = -2 -> 3 (mod 5); seven +1s -> 2.
    ("cycle_nav", [0, 0, 2, 1, 0], 0, [0, 0, 2, 1, 0, 3], [3]),
    ("cycle_nav", [2] * 7, 0, [2] * 7 + [3], [2]),
    # The sorted string is scored at the last 4 positions (the 4 EMPTY tokens).
    ("bucket_sort", [3, 9, 0, 3], 0, [3, 9, 0, 3, 10, 10, 10, 10], [0, 3, 3, 9]),
    # 5 and 7 both occur twice: the tie goes to the larger symbol, 7.
    ("majority", [5, 7, 7, 5, 1], 0, [5, 7, 7, 5, 1, 63], [7]),
    ("majority", [4, 4, 9], 0, [4, 4, 9, 63], [4]),
    ("majority", [62, 0], 0, [62, 0, 63], [62]),
    # Symbol 3 occurs 12 times: the answer is 12 itself, not 12 mod 10.
    ("majority_count", [3] * 12 + [5], 0, [3] * 12 + [5, 63], [12]),
    ("majority_count", [8, 1, 8], 0, [8, 1, 8, 63], [2]),
    # w = 4 1 7 2, then w[:2] = 4 1, then EMPTY: the missing next token is w[2] = 7.
    ("missing_duplicate", [4, 1, 7, 2], 2, [4, 1, 7, 2, 4, 1, 9], [7]),
    ("missing_duplicate", [4, 1, 7, 2], 0, [4, 1, 7, 2, 9], [4]),
    ("missing_duplicate", [4, 1, 7, 2], 3, [4, 1, 7, 2, 4, 1, 7, 9], [2]),
]


@pytest.mark.parametrize("name,string,cut,row,answer", HAND)
def test_hand_worked_rows(name, string, cut, row, answer):
  got_row, got_answer = fl.example(name, string, cut)
  assert got_row.tolist() == row and got_answer.tolist() == answer
  assert got_row.dtype == np.int32


def _visible_answer(name, visible):
  """Each task's answer computed by the test from the tokens before the first scored position."""
  s = [int(t) for t in visible]
  if name == "parity_check":
    return [s.count(1) % 2]
  if name == "even_pairs":
    return [sum(a != b for a, b in zip(s, s[1:])) % 2]
  if name == "cycle_nav":
    return [(s.count(2) - s.count(0)) % 5]
  if name == "bucket_sort":
    return sorted(s)
  counts = collections.Counter(s)
  if name == "majority":
    return [max(counts, key=lambda symbol: (counts[symbol], symbol))]
  if name == "majority_count":
    return [max(counts.values())]
  raise AssertionError(name)


def _duplicate_lengths(visible):
  """String lengths n that explain a missing_duplicate row w + w[:cut] (cut = len - n < n)."""
  total = len(visible)
  return [n for n in range(total // 2 + 1, total + 1)
          if list(visible[n:]) == list(visible[:total - n])]


@pytest.mark.parametrize("name", sorted(fl.LANGUAGES))
def test_batches_follow_the_task(name):
  batch = fl.generate(name, np.random.default_rng(0), batch_size=64, min_len=1, max_len=40)
  width = fl.row_width(name, 40)
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
      "inputs": ((64, width), np.int32), "targets": ((64, width), np.int32),
      "weights": ((64, width), np.float32)}
  vocab = fl.vocab_size(name, 40)
  assert batch["inputs"].min() >= 0 and batch["inputs"].max() == EMPTY[name] < vocab
  assert batch["targets"].min() >= 0 and batch["targets"].max() < vocab
  lengths, symbols = [], set()
  for inputs, targets, weights in zip(batch["inputs"], batch["targets"], batch["weights"]):
    scored = np.flatnonzero(weights)
    assert set(weights.tolist()) <= {0.0, 1.0}
    first, last = scored[0], scored[-1]
    assert scored.tolist() == list(range(first, last + 1))  # One block of answers,
    assert np.all(inputs[first:] == EMPTY[name])  # read at EMPTY tokens, padding EMPTY too.
    assert np.all(targets[weights == 0] == 0)
    visible, answer = inputs[:first], targets[scored].tolist()
    assert np.all(visible < EMPTY[name])
    symbols.update(visible.tolist())
    if name == "missing_duplicate":
      # Some string length n explains the row (the answers: test_missing_duplicate_rows).
      candidates = _duplicate_lengths(visible)
      assert len(scored) == 1 and min(candidates) <= 40
      lengths.append(len(visible))  # n + cut: within [1, 79].
      continue
    assert answer == _visible_answer(name, visible), (name, visible)
    lengths.append(len(visible))
    assert len(scored) == (len(visible) if name == "bucket_sort" else 1)
  assert 1 <= min(lengths) and max(lengths) <= (79 if name == "missing_duplicate" else 40)
  assert len(set(lengths)) > 10  # Lengths vary across the batch.
  assert symbols == set(range(EMPTY[name]))  # Every symbol below EMPTY is drawn.


@pytest.mark.parametrize("n", [1, 5, 40])
def test_missing_duplicate_rows(n):
  # With every string n long, a row w + w[:cut] + EMPTY shows its cut: len - n.
  batch = fl.generate("missing_duplicate", np.random.default_rng(n), batch_size=64, min_len=n,
                      max_len=n)
  cuts = []
  for inputs, targets, weights in zip(batch["inputs"], batch["targets"], batch["weights"]):
    (position,) = np.flatnonzero(weights)
    visible = inputs[:position]
    cut = len(visible) - n
    assert 0 <= cut < n and list(visible[n:]) == list(visible[:cut])
    assert inputs[position] == 9 and targets[position] == visible[cut]
    cuts.append(cut)
  assert (set(cuts) == set(range(n))) if n <= 5 else (len(set(cuts)) > 20)  # Cuts cover [0, n).


def test_long_strings_reach_the_longest_row():
  # Every row is as long as the task allows: max_len symbols (and max_len - 1 repeated).
  for name in ("parity_check", "bucket_sort", "missing_duplicate"):
    batch = fl.generate(name, np.random.default_rng(1), batch_size=64, min_len=7, max_len=7)
    ends = [np.flatnonzero(w)[-1] + 1 for w in batch["weights"]]
    assert max(ends) == fl.row_width(name, 7)
  assert fl.row_width("majority", 40) == 41 and fl.row_width("bucket_sort", 40) == 80


def test_vocab_sizes_cover_inputs_and_answers():
  # Inputs with EMPTY, or the answer classes where there are more of them.
  assert {name: fl.vocab_size(name, 40) for name in fl.LANGUAGES} == {
      "parity_check": 3, "even_pairs": 3, "cycle_nav": 5, "bucket_sort": 11,
      "majority": 64, "majority_count": 64, "missing_duplicate": 10}
  assert fl.vocab_size("majority_count", 256) == 257  # Counts up to 256 are ids up to 256.
  task = fl.FormalLanguage(task="majority_count", batch_size=2, seed=0, eval_batches=1,
                           eval_min_len=200, eval_max_len=200)
  assert task.vocab_size == 201
  np.testing.assert_array_less(next(task.eval_batches())["targets"], 201)


def test_chance_is_the_most_frequent_answer_and_scaled_accuracy():
  # Scored answers (weight 1): 1, 1, 0 in the first batch, 1, 2 in the second: answer 1 is
  # 3 of the 5, so always answering 1 scores 0.6.
  batches = [{"targets": np.array([[5, 1, 1], [0, 7, 7]]),
              "weights": np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])},
             {"targets": np.array([[1, 2]]), "weights": np.array([[1.0, 1.0]])}]
  assert fl.majority_answer_rate(batches) == 0.6
  # xLSTM Fig. 4: (accuracy - chance) / (1 - chance), 0 at chance, 1 when perfect.
  assert fl.scaled_accuracy(0.8, 0.6) == pytest.approx(0.5)
  assert fl.scaled_accuracy(0.6, 0.6) == 0.0
  assert fl.scaled_accuracy(1.0, 0.6) == 1.0
  assert fl.scaled_accuracy(0.4, 0.6) == pytest.approx(-0.5)  # Below chance is negative.
  assert fl.scaled_accuracy(0.55, 1 / 9) == pytest.approx(0.49375)  # 3.95 / 8
  with pytest.raises(ValueError, match="No scored positions"):
    fl.majority_answer_rate([{"targets": np.zeros((1, 2)), "weights": np.zeros((1, 2))}])
  with pytest.raises(ValueError, match="chance must be in"):
    fl.scaled_accuracy(0.5, 1.0)


@pytest.mark.parametrize("task,answers", [
    ("parity_check", 2), ("cycle_nav", 5), ("bucket_sort", 10), ("missing_duplicate", 9)])
def test_chance_of_tasks_with_uniform_answers_is_a_uniform_guess(task, answers):
  source = fl.FormalLanguage(task=task, batch_size=256, seed=0, eval_batches=4)
  # 1024 strings (bucket sort: every symbol of them): within 3 standard deviations.
  rate = fl.majority_answer_rate(source.eval_batches())
  assert rate == pytest.approx(1 / answers, abs=3 * np.sqrt(0.25 / 1024) + 0.01)


def test_formal_language_task_reports_chance_and_scaled_accuracy():
  config = load_config("configs/formal_languages.py:mingru,cpu")
  config.data.task = "majority_count"
  task = make_task(config.data, seed=0)
  # Counts near n / 63 dominate: far above a uniform guess over 1..256.
  assert task.chance == fl.majority_answer_rate(task.eval_batches()) > 0.1
  metrics = task.eval_metrics({"loss": 2.0, "weight": 4.0, "correct": 3.0, "rows_correct": 3.0,
                               "rows": 4.0})
  assert metrics["accuracy"] == 0.75 and metrics["chance_accuracy"] == task.chance
  assert metrics["scaled_accuracy"] == pytest.approx((0.75 - task.chance) / (1 - task.chance))


def test_task_from_config_is_deterministic_and_splits_lengths():
  config = load_config("configs/formal_languages.py:mingru,cpu")
  config.data.task = "bucket_sort"
  task = make_task(config.data, seed=3)
  again = make_task(config.data, seed=3)
  for key in ("inputs", "targets", "weights"):
    np.testing.assert_array_equal(task.train_batch(5)[key], again.train_batch(5)[key])
  assert not np.array_equal(task.train_batch(5)["inputs"], task.train_batch(6)["inputs"])
  evals = list(task.eval_batches())
  assert len(evals) == config.data.eval_batches
  for key in ("inputs", "targets", "weights"):
    np.testing.assert_array_equal(evals[0][key], next(again.eval_batches())[key])
  lengths = [w.sum() for b in evals for w in b["weights"]]  # One scored position per symbol.
  assert min(lengths) >= 40 and max(lengths) <= 256
  assert task.vocab_size == fl.vocab_size("bucket_sort") == 11
  assert task.decode([3, 0, 10]) == "3 0 _"


def test_bad_settings_are_clear_errors():
  with pytest.raises(ValueError, match="choose one of"):
    fl.language("parity")
  with pytest.raises(ValueError, match="min_len"):
    fl.generate("parity_check", np.random.default_rng(0), batch_size=1, min_len=5, max_len=2)
  with pytest.raises(ValueError, match="symbols 0..1"):
    fl.example("parity_check", [0, 2])
  with pytest.raises(ValueError, match="cut"):
    fl.example("missing_duplicate", [1, 2], cut=2)
