"""Generation for every model kind: decoding step by step gives the parallel pass's logits,
`minrnn.sample` samples from a trained run of each kind, attention's key-value cache is sized or
refused, and the inference experiment writes its results.

The models are the configs' own (`configs/<family>.py:<model>,cpu`) at a tiny width, so the
block compositions are those the experiments train: the conv-free Mamba and Transformer blocks,
SRU++ without residual or norm, and the adaptive softmax of WikiText-103.
"""

import importlib.util
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn import sample as sample_lib
from minrnn import train as train_lib
from minrnn.models import build_language_model, make_generator
from minrnn.models.generation import prefill
from minrnn.training.config import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]
VOCAB, BATCH, TIME, PROMPT = 40, 2, 11, 6
TOL = dict(rtol=2e-5, atol=2e-5)
# kind -> (config, model overrides at a tiny width).
TINY = dict(features=16, num_layers=2, mlp_expansion=2)
KINDS = {
    **{kind: (f"configs/shakespeare.py:{kind},cpu", TINY)
       for kind in ("mingru", "minlstm", "gru", "lstm", "mamba", "transformer")},
    "sru": ("configs/shakespeare.py:mingru,cpu", dict(TINY, cell="sru")),
    # A cache shorter than the text: the parallel pass and the steps see the same window.
    "transformer_window": ("configs/shakespeare.py:transformer,cpu",
                           dict(TINY, cell_kwargs=dict(num_heads=4, cache_size=4))),
    "srupp": ("configs/enwik8.py:srupp,cpu", {}),
    "srupp_adaptive": ("configs/wikitext103.py:srupp,cpu", {}),
}


# Jitted, so that the compilation cache serves reruns (op by op, a step is slower to run).
_call = nnx.jit(lambda model, tokens: model(tokens))
_prefill = nnx.jit(prefill, static_argnames="chunk")
_step = nnx.jit(lambda model, state, tokens: model.step(state, tokens))


def _model(kind):
  path, overrides = KINDS[kind]
  section = load_config(path).model
  section.update(overrides)
  return build_language_model(section, VOCAB, seed=0)


def _tokens(seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(0, VOCAB, (BATCH, TIME)), jnp.int32)


@pytest.mark.parametrize("kind", KINDS)
def test_prompt_then_steps_give_the_parallel_logits(kind):
  model = _model(kind)
  tokens = _tokens()
  logits, final_state = _call(model, tokens)
  # The prompt in chunks of 4 (a fresh chunk, a scanned one, a shorter last one), as the
  # generator runs long prompts.
  _, scores = _prefill(model, tokens[:, :PROMPT + 3], chunk=4)
  np.testing.assert_allclose(scores, logits[:, PROMPT + 2], **TOL)
  state, scores = _prefill(model, tokens[:, :PROMPT])
  np.testing.assert_allclose(scores, logits[:, PROMPT - 1], **TOL)
  for t in range(PROMPT, TIME):
    state, scores = _step(model, state, tokens[:, t])
    np.testing.assert_allclose(scores, logits[:, t], err_msg=f"{kind} step {t}", **TOL)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(final_state), strict=True):
    np.testing.assert_allclose(a, b, **TOL)


def test_generator_refuses_a_text_longer_than_the_cache():
  model = _model("transformer_window")
  assert model.context_capacity == 4 and _model("mingru").context_capacity is None
  prompt = _tokens()[:, :3]
  # 3 prompt tokens and 2 generated ones feed 4 positions: they fit.
  assert make_generator(model, length=2)(prompt, jax.random.key(0)).shape == (BATCH, 2)
  with pytest.raises(ValueError, match="cache_size >= 5"):
    make_generator(model, length=3)(prompt, jax.random.key(0))


def _train(config, path, steps=1):
  config.model.update(features=16, num_layers=1, mlp_expansion=2)
  config.train.update(num_steps=steps, warmup_steps=1, log_every=1, eval_every=steps,
                      checkpoint_every=steps, progress_bar=False, tensorboard=False)
  train_lib.train(config, path)
  return path


@pytest.mark.parametrize("kind", ["mingru", "minlstm", "gru", "lstm", "mamba", "transformer"])
def test_sample_from_a_trained_run_of_every_kind(kind, tmp_path):
  config = load_config(f"configs/shakespeare.py:{kind},cpu")
  config.data.update(batch_size=4, seq_len=16, eval_batches=1, download=False)
  if kind == "transformer":
    # A cache shorter than prompt + continuation: `sample` builds the model with a longer one.
    config.model.cell_kwargs.cache_size = 8
  workdir = _train(config, tmp_path)
  text = sample_lib.sample(workdir, "ROMEO:", length=12, seed=0)
  assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 12
  assert text == sample_lib.sample(workdir, "ROMEO:", length=12, seed=0)
  if kind == "transformer":
    model, _, _ = sample_lib.load_run(workdir)
    with pytest.raises(ValueError, match="key-value cache holds 8"):
      make_generator(model, length=12)(jnp.zeros((1, 6), jnp.int32), jax.random.key(0))


def test_sample_from_a_trained_srupp_run_with_the_adaptive_softmax(fixture_data_dir, tmp_path):
  config = load_config("configs/wikitext103.py:srupp,cpu")
  config.data.dir = str(fixture_data_dir)
  config.data.update(batch_size=2, seq_len=16, eval_batch_size=2, eval_seq_len=16,
                     eval_batches=1)
  workdir = _train(config, tmp_path)
  model, task, _ = sample_lib.load_run(workdir)
  assert model.adaptive is not None
  prompt = task.decode(task.encode("the")[:1])
  text = sample_lib.sample(workdir, prompt, length=5, seed=1)
  assert text.startswith(prompt + " ") and len(text.split()) == 6


def test_inference_experiment_writes_its_tables(tmp_path):
  spec = importlib.util.spec_from_file_location("experiment_inference", REPO / "experiments" /
                                                "inference" / "run.py")
  run = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(run)
  payload = run.main(["--models", "mingru,transformer", "--contexts", "16,32",
                      "--context_batch", "2", "--batches", "2,4", "--batch_context", "16",
                      "--features", "8", "--num_layers", "1", "--num_heads", "2",
                      "--generate", "4", "--prompt_chunk", "8", "--repeat_s", "0.01",
                      "--name", "inference_test", "--out_dir", str(tmp_path)])
  records = {(r["model"], r["context"], r["batch"]): r for r in payload["records"]}
  assert len(records) == 6 and all(r["status"] == "ok" for r in records.values())
  # A recurrent state is the same at any context; the key-value cache grows with it.
  assert records["mingru", 16, 2]["state_bytes"] == records["mingru", 32, 2]["state_bytes"]
  assert (records["transformer", 16, 2]["state_bytes"]
          < records["transformer", 32, 2]["state_bytes"])
  assert records["mingru", 16, 4]["decode_tokens_per_s"] > 0
  assert json.loads((tmp_path / "inference_test.json").read_text())["records"]
  table = (tmp_path / "inference_test.md").read_text()
  assert "| batch | minGRU | Transformer |" in table and "19.6" in table
  assert (tmp_path / "inference_test.png").stat().st_size > 0
