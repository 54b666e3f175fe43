"""WikiText word-level reader: the real WikiText-2 validation/test files, a WikiText-103 format
fixture (vocabulary, round trip, memory-mapped cache), and SRU++ with the adaptive softmax
trained on it end to end."""

import collections
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from minrnn import train as train_lib
from minrnn.data import data_dir, wikitext
from minrnn.data.segments import SegmentStream
from minrnn.data.vocab import ByteVocab
from minrnn.layers.adaptive import AdaptiveEmbedding
from minrnn.models import LanguageModel
from minrnn.tasks import StreamTask
from minrnn.training.config import load_config
from minrnn.training.steps import (create_state, initial_model_state, make_eval_step,
                                   make_train_step)


# The upstream layout: a blank line, ` = Heading = `, a blank line, tokenized text with <unk>
# and @-@ style number splits; every line starts with a space.
PARAGRAPH = (" The <unk> river runs 1 @,@ 200 km through the valley , and the town of "
             "Oakfield lies on its north bank . Fishing and trade made the town rich .\n")
SECTION = " \n = {title} = \n \n" + PARAGRAPH + " \n = = History = = \n \n" + PARAGRAPH * 3


def write_corpus(root: pathlib.Path) -> pathlib.Path:
  folder = root / "wikitext-103"
  folder.mkdir(parents=True)
  for split, titles in (("train", ["Alpha", "Beta", "Gamma"] * 20), ("valid", ["Delta"]),
                        ("test", ["Alpha", "Beta"])):
    text = "".join(SECTION.format(title=t) for t in titles)
    # Words outside the training vocabulary map to <unk> in the held-out splits.
    (folder / f"wiki.{split}.tokens").write_text(text, encoding="utf-8")
  return root


def test_real_wikitext2_token_counts():
  root = data_dir() / "wikitext-2"
  assert len(wikitext.read_tokens(root / "wiki.valid.tokens")) == 217_646
  tokens = wikitext.read_tokens(root / "wiki.test.tokens")
  assert len(tokens) == 245_569
  assert tokens.count(wikitext.EOS) == 4_358 and "<unk>" in tokens
  vocab = wikitext.WordVocab.from_tokens(tokens)
  counts = collections.Counter(tokens)
  assert [counts[w] for w in vocab.words[:50]] == sorted(counts.values(), reverse=True)[:50]
  ids = vocab.encode(tokens)
  assert [vocab.words[i] for i in ids[:200]] == tokens[:200]


def test_fixture_vocab_round_trip_and_cache(tmp_path):
  root = write_corpus(tmp_path)
  vocab, splits = wikitext.load_splits("wikitext103", root)
  train_tokens = wikitext.read_tokens(root / "wikitext-103" / "wiki.train.tokens")
  assert vocab.words == wikitext.WordVocab.from_tokens(train_tokens).words
  counts = [train_tokens.count(w) for w in vocab.words]
  assert counts == sorted(counts, reverse=True)  # Frequency order: adaptive clusters are ranges.
  assert all(isinstance(a, np.memmap) and a.dtype == np.int32 for a in splits.values())
  assert len(splits["train"]) == len(train_tokens)
  assert [vocab.words[i] for i in splits["train"]] == train_tokens
  # "Delta" never occurs in training: it becomes <unk>.
  valid = [vocab.words[i] for i in splits["valid"]]
  assert "Delta" not in valid and valid[:6] == ["<eos>", "=", "<unk>", "=", "<eos>", "<eos>"]
  assert vocab.decode(splits["test"][:5]) == "<eos> = Alpha = <eos>"
  caches = list((root / "wikitext-103").glob("ids-*/vocab.json"))
  assert len(caches) == 1
  again, _ = wikitext.load_splits("wikitext103", root)
  assert again.words == vocab.words


def test_read_only_data_dir_gets_its_cache_elsewhere(tmp_path, monkeypatch):
  root = write_corpus(tmp_path / "data")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  access = os.access
  monkeypatch.setattr(os, "access", lambda path, mode: (
      access(path, mode) and not pathlib.Path(path).is_relative_to(root)))
  wikitext.load_splits("wikitext103", root)
  assert not list((root / "wikitext-103").glob("ids-*"))
  assert list((tmp_path / "cache").rglob("vocab.json"))


def test_missing_files_are_explained(tmp_path):
  with pytest.raises(FileNotFoundError,
                     match=r"(?s)wikitext-103/wiki\.train\.tokens.*wikitext-103-v1\.zip"):
    wikitext.load_splits("wikitext103", tmp_path)


def srupp_config(size):
  return load_config(f"configs/wikitext103.py:srupp,{size}")


def test_srupp_with_adaptive_softmax_trains_on_the_fixture(tmp_path):
  config = srupp_config("cpu")
  config.data.dir = str(write_corpus(tmp_path / "data"))
  config.train.num_steps = 30
  config.train.learning_rate = 1e-2
  config.train.eval_every = 30
  config.train.checkpoint_every = 30
  config.train.progress_bar = False
  config.train.tensorboard = False
  result = train_lib.train(config, tmp_path / "run")
  assert result["cell"] == "srupp" and result["step"] == config.train.num_steps
  valid, test = result["eval"], result["splits"]["test"]
  vocab, _ = wikitext.load_splits("wikitext103", config.data.dir)
  # Better than a uniform guess after a few steps, and finite on every split.
  assert valid["perplexity"] < vocab.size
  assert np.isfinite(test["perplexity"])


def _assert_loop_scores_like_full_scores(config, forbid_full_scores):
  """The loop's train and eval steps on one batch (some weights 0) give the loss, accuracy and
  gradient norm of the model's full scores; `forbid_full_scores()` then makes building full
  `(B, T, vocab)` scores raise, so the steps must score the targets in chunks."""
  vocab_size = 40
  ids = np.arange(200) % vocab_size
  task = StreamTask(SegmentStream(
      name="toy", train_ids=ids, eval_ids={"valid": ids}, vocab_size=vocab_size,
      batch_size=config.data.batch_size, seq_len=config.data.seq_len), ByteVocab())
  state = create_state(config, task)
  shape = (config.data.batch_size, config.data.seq_len)
  rng = np.random.default_rng(0)
  batch = {"inputs": rng.integers(0, vocab_size, shape, dtype=np.int32),
           "targets": rng.integers(0, vocab_size, shape, dtype=np.int32),
           "weights": np.ones(shape, np.float32)}
  batch["weights"][1, 9:] = 0.0
  model_state = initial_model_state(state, shape[0])

  def full_loss(model):
    scores, _ = model(jnp.asarray(batch["inputs"]), model_state)
    losses = optax.softmax_cross_entropy_with_integer_labels(scores, batch["targets"])
    return jnp.sum(losses * batch["weights"]) / jnp.sum(batch["weights"]), scores

  (loss, scores), grads = nnx.jit(nnx.value_and_grad(full_loss, has_aux=True))(state.model())
  correct = (jnp.argmax(scores, -1) == batch["targets"]) * batch["weights"]

  forbid_full_scores()
  sums, _ = make_eval_step(state, task)(state.params, batch, model_state)
  np.testing.assert_allclose(sums["loss"] / sums["weight"], loss, rtol=1e-5)
  assert float(sums["correct"]) == float(correct.sum())
  _, _, metrics, _ = make_train_step(state, task)(
      state.params, state.opt_state, batch, jax.random.key(0), model_state)
  np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(nnx.state(grads, nnx.Param)),
                             rtol=1e-4)


def test_loop_scores_the_adaptive_softmax_like_its_full_log_probs(monkeypatch):
  # SRU++'s adaptive softmax, scored 12 positions at a time (not a divisor of 2 x 16).
  config = srupp_config("cpu")
  assert config.model.softmax_chunk_size == 12
  assert srupp_config("paper").model.softmax_chunk_size == 1024

  def no_full_scores(self, h):
    raise AssertionError(f"full log-probabilities {h.shape[:-1]} x vocab built in a step")

  _assert_loop_scores_like_full_scores(
      config, lambda: monkeypatch.setattr(AdaptiveEmbedding, "log_probs", no_full_scores))


def test_loop_scores_the_residual_lm_in_chunks_like_its_full_logits(monkeypatch):
  # minGRU's tied full softmax, scored 12 positions at a time.
  config = load_config("configs/wikitext103.py:mingru,cpu")
  assert config.model.softmax_chunk_size == 12
  assert load_config("configs/wikitext103.py:mingru").model.softmax_chunk_size == 1024
  head = LanguageModel._logits

  def chunk_logits_only(self, x):
    if x.ndim != 2:
      raise AssertionError(f"full logits {x.shape[:-1]} x vocab built in a step")
    return head(self, x)

  _assert_loop_scores_like_full_scores(
      config, lambda: monkeypatch.setattr(LanguageModel, "_logits", chunk_logits_only))


def test_a_bad_byte_names_its_file_and_offset_and_writes_no_cache(tmp_path):
  root = write_corpus(tmp_path)
  path = root / "wikitext-103" / "wiki.valid.tokens"
  # Past the first MiB, after a two-byte character that straddles the reader's first chunk.
  head = b"word " * 209_715 + "\u00e9".encode() + b" x\n"
  assert len(head) > 1 << 20 and head[(1 << 20) - 1:(1 << 20) + 1] == "\u00e9".encode()
  path.write_bytes(head + b"good line\nbad \xff byte\n")
  offset = len(head) + len(b"good line\nbad ")
  with pytest.raises(ValueError, match=rf"wiki\.valid\.tokens is not UTF-8 text: byte {offset} "
                                       r"of the file \(0xff\)"):
    wikitext.load_splits("wikitext103", root, cache_dir=tmp_path / "cache")
  assert not (tmp_path / "cache").exists()


def test_an_empty_training_file_is_named_and_leaves_no_cache(tmp_path):
  root = write_corpus(tmp_path)
  (root / "wikitext-103" / "wiki.train.tokens").write_text("")
  with pytest.raises(ValueError, match=r"wiki\.train\.tokens holds no words"):
    wikitext.load_splits("wikitext103", root)
  assert not list((root / "wikitext-103").glob("ids-*"))
