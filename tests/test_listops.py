"""ListOps as the Long Range Arena generates it (`minrnn.data.listops`): every expression is
evaluated again by a recursive parser written here, its shape checked against LRA's definition,
and the lengths and class shares of a set compared with sets drawn by LRA's own generator; the
cache, the batches and the padding."""

import statistics

import numpy as np
import pytest

from minrnn.data import listops

# Drawn by LRA's own generator (google-research/long-range-arena at cd31e5c,
# `lra_benchmarks/data/listops.py` with its defaults) through
# `scripts/listops_reference_stats.py --num 40000 --seed 1`: 40,000 distinct trees, tokens
# counted as LRA's input pipeline reads them.
LRA_LENGTH_MEAN, LRA_LENGTH_STD = 1035.29, 393.20
LRA_LENGTH_QUANTILES = {0.1: 578.0, 0.25: 703.0, 0.5: 955.0, 0.75: 1308.0, 0.9: 1643.0}
LRA_LABEL_SHARES = (0.1695, 0.0915, 0.0746, 0.0820, 0.0896, 0.0854, 0.0782, 0.0724, 0.0860,
                    0.1708)
LRA_NUM = 40_000
TINY = listops.Spec(max_depth=4, max_args=4, min_length=8, max_length=40)


def evaluate(text: str) -> tuple[int, int, tuple[int, int]]:
  """The value of a ListOps expression written as LRA writes it (after its pipeline), parsed
  recursively: `(value, depth, (fewest, most) arguments of an operator)`; a ValueError unless
  `text` is exactly one well-formed expression."""
  tokens = text.split()

  def parse(i: int, depth: int):
    token = tokens[i]
    if token.isdigit():
      return int(token), i + 1, depth, (99, 0)
    if token not in ("[MIN", "[MAX", "[MED", "[SM"):
      raise ValueError(f"unexpected token {token!r} at {i}")
    args, i, deepest, (fewest, most) = [], i + 1, depth, (99, 0)
    while tokens[i] != "]":
      value, i, d, (f, m) = parse(i, depth + 1)
      args.append(value)
      deepest, fewest, most = max(deepest, d), min(fewest, f), max(most, m)
    if token == "[MIN":
      value = min(args)
    elif token == "[MAX":
      value = max(args)
    elif token == "[MED":
      # LRA: int(np.median(args)); for an even count the mean of the middle two, rounded down.
      value = int(statistics.median(args))
    else:
      value = sum(args) % 10
    return value, i + 1, deepest, (min(fewest, len(args)), max(most, len(args)))

  value, end, depth, arity = parse(0, 1)
  if end != len(tokens):
    raise ValueError(f"{len(tokens) - end} tokens after the expression")
  return value, depth, arity


def test_the_parser_here_reads_hand_worked_examples():
  # Depth counts the digits too: the root is at depth 1, as LRA's generate_tree(1, ...).
  assert evaluate("[MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ]") == (5, 3, (2, 6))
  assert evaluate("[MED 1 2 ]") == (1, 2, (2, 2))  # int(1.5)
  assert evaluate("[SM 9 8 [MED 2 7 9 4 ] ]") == (2, 3, (3, 4))  # 9 + 8 + int(5.5) = 22
  with pytest.raises(ValueError):
    evaluate("[MAX 4 3 ] 1")


@pytest.mark.parametrize("spec", [listops.Spec(), TINY], ids=["lra", "tiny"])
def test_every_expression_is_well_formed_and_labelled_with_its_value(spec):
  split = listops.generate(300 if spec == TINY else 150, seed=7, spec=spec)
  depths, fewest, most = [], [], []
  for i in range(len(split)):
    row = split.row(i)
    assert spec.min_length < len(row) < spec.max_length
    value, depth, (f, m) = evaluate(listops.decode(row))
    assert value == split.labels[i]
    depths.append(depth)
    fewest.append(f)
    most.append(m)
  assert max(depths) <= spec.max_depth and min(fewest) == 2 and max(most) <= spec.max_args
  if spec == TINY:  # Small trees reach the limits often: they are reached, not exceeded.
    assert max(depths) == spec.max_depth and max(most) == spec.max_args
  rows = {split.row(i).tobytes() for i in range(len(split))}
  assert len(rows) == len(split)  # Distinct, as LRA's set keeps them.


def test_expressions_are_distinct_and_impossible_settings_are_errors():
  # `[OP d d ]` is the only shape of 4 tokens: 4 * 10 * 10 expressions.
  few = listops.Spec(max_depth=2, max_args=2, min_length=3, max_length=5)
  split = listops.generate(400, 0, few)
  assert len({tuple(split.row(i).tolist()) for i in range(400)}) == 400
  with pytest.raises(ValueError, match="without a new expression.*400 of 401 found"):
    listops.generate(401, 0, few)
  with pytest.raises(ValueError, match="longest has 12 tokens"):
    listops.Spec(max_depth=2, max_args=10, min_length=500)


def test_lengths_and_class_shares_match_lra():
  n = 2000
  split = listops.generate(n, seed=0)
  lengths = split.lengths
  # Standard errors of our set and LRA's; 4 of them either way.
  se = LRA_LENGTH_STD * np.sqrt(1 / n + 1 / LRA_NUM)
  assert abs(lengths.mean() - LRA_LENGTH_MEAN) < 4 * se
  for q, value in LRA_LENGTH_QUANTILES.items():
    # The share of our lengths at or below LRA's quantile q is q, up to sampling.
    assert abs(np.mean(lengths <= value) - q) < 4 * np.sqrt(q * (1 - q) * (1 / n + 1 / LRA_NUM))
  shares = np.bincount(split.labels, minlength=10) / n
  p = np.asarray(LRA_LABEL_SHARES)
  np.testing.assert_array_less(np.abs(shares - p), 4 * np.sqrt(p * (1 - p) * (1 / n + 1 / LRA_NUM)))
  # LRA's imbalance: 0 and 9 (the extremes MIN and MAX favour) about twice as often as the rest.
  assert shares[0] > 0.14 and shares[9] > 0.14 and shares[1:9].max() < 0.11


def test_a_smaller_set_is_the_start_of_a_larger_one_and_seeds_differ():
  small, large = listops.generate(20, 3, TINY), listops.generate(60, 3, TINY)
  np.testing.assert_array_equal(small.tokens, large.tokens[:small.offsets[-1]])
  np.testing.assert_array_equal(small.labels, large.labels[:20])
  other = listops.generate(20, 4, TINY)
  assert not np.array_equal(other.labels, small.labels) or not np.array_equal(
      other.tokens[:50], small.tokens[:50])
  with pytest.raises(ValueError, match="different seeds"):
    listops.load_splits({"valid": 20, "test": 60}, {"valid": 3, "test": 3}, TINY)


def test_encode_and_decode_round_trip():
  text = "[MAX 4 3 [SM 2 3 ] ]"
  ids = listops.encode(text)
  assert ids.tolist() == [11, 4, 3, 13, 2, 3, 14, 14]
  assert listops.decode([*ids, listops.PAD_ID, listops.PAD_ID]) == text
  with pytest.raises(ValueError, match="'X' is not a ListOps token"):
    listops.encode("[MAX 4 3 X")


def test_a_split_is_generated_once_then_read_back_and_checked(tmp_path, monkeypatch):
  first = listops.load_split(30, 5, TINY, tmp_path)
  path = listops.cache_path(30, 5, TINY, tmp_path)
  assert path.parent == tmp_path / "listops" and [p.name for p in path.parent.iterdir()] == [
      path.name]
  monkeypatch.setattr(listops, "generate", lambda *a, **k: pytest.fail("generated again"))
  again = listops.load_split(30, 5, TINY, tmp_path)
  np.testing.assert_array_equal(again.tokens, first.tokens)
  np.testing.assert_array_equal(again.labels, first.labels)
  # A changed byte in the stored arrays is caught by the checksum.
  with np.load(path) as stored:
    arrays = dict(stored)
  arrays["labels"] = (arrays["labels"] + 1) % 10
  np.savez(path, **arrays)
  with pytest.raises(ValueError, match="is damaged.*Delete it"):
    listops.load_split(30, 5, TINY, tmp_path)
  path.write_bytes(path.read_bytes()[:100])
  with pytest.raises(ValueError, match="cannot be read.*Delete it"):
    listops.load_split(30, 5, TINY, tmp_path)


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
  def fail(file, **arrays):
    file.write(b"the first bytes")
    raise OSError("disk full")
  monkeypatch.setattr(np, "savez", fail)
  with pytest.raises(OSError, match="Could not write.*disk full.*data.dir"):
    listops.load_split(30, 5, TINY, tmp_path)
  assert list((tmp_path / "listops").iterdir()) == []


def _source(splits, **kwargs):
  options = dict(batch_size=4, eval_batch_size=3, seed=0, width=TINY.max_length)
  options.update(kwargs)
  return listops.ListOps(splits=splits, **options)


def test_batches_are_right_padded_with_lengths_labels_and_weights():
  split = listops.generate(5, 1, TINY)
  batch = listops.make_batch(split, np.array([3, 0]), width=40, size=3)
  assert {k: (v.dtype.name, v.shape) for k, v in batch.items()} == {
      "inputs": ("int32", (3, 40)), "seq_lengths": ("int32", (3,)), "labels": ("int32", (3,)),
      "weights": ("float32", (3, 40))}
  for i, row in enumerate((3, 0)):
    n = len(split.row(row))
    assert batch["seq_lengths"][i] == n and batch["labels"][i] == split.labels[row]
    np.testing.assert_array_equal(batch["inputs"][i, :n], split.row(row))
    assert (batch["inputs"][i, n:] == listops.PAD_ID).all()
    assert batch["weights"][i].sum() == n and batch["weights"][i, n - 1] == 1
  # The padding row: no tokens, no weight.
  assert batch["seq_lengths"][2] == 0 and not batch["weights"][2].any()
  assert (batch["inputs"][2] == listops.PAD_ID).all()


def test_training_batches_follow_the_seed_and_cover_each_epoch_once():
  splits = {"train": listops.generate(10, 1, TINY), "valid": listops.generate(7, 2, TINY),
            "test": listops.generate(3, 3, TINY)}
  source = _source(splits)
  labels = lambda batch: batch["labels"].tolist()
  key = lambda b, i: tuple(b["inputs"][i, :b["seq_lengths"][i]].tolist())
  # Steps 0-4 are 20 rows: epochs 0 and 1, the third batch straddling them.
  seen = [key(source.train_batch(s), i) for s in range(5) for i in range(4)]
  rows = {tuple(splits["train"].row(i).tolist()) for i in range(10)}
  assert set(seen[:10]) == rows and set(seen[10:]) == rows
  assert seen[:10] != seen[10:]  # Another order each epoch.
  rows_of = lambda b: [key(b, i) for i in range(4)]
  assert rows_of(_source(splits).train_batch(2)) == rows_of(source.train_batch(2))
  assert rows_of(_source(splits, seed=1).train_batch(0)) != rows_of(source.train_batch(0))
  # Evaluation: each row once, in order; the last batch padded with empty rows.
  batches = list(source.eval_batches("valid"))
  assert [b["seq_lengths"].astype(bool).sum() for b in batches] == [3, 3, 1]
  assert sum((labels(b)[:int((b["seq_lengths"] > 0).sum())] for b in batches), []) == \
      splits["valid"].labels.tolist()
  assert len(list(source.eval_batches("test"))) == 1
  with pytest.raises(ValueError, match="evaluation splits"):
    next(source.eval_batches("train"))
