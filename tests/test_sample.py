"""Sampling: determinism with a fixed seed, greedy decoding, the command line, bad arguments."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn import sample as sample_lib
from minrnn import train as train_lib
from minrnn.generation import make_generator
from minrnn.models import LanguageModel
from test_train import REPO, cli_env, tiny_shakespeare_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp("run")
  train_lib.train(tiny_shakespeare_config(num_steps=20), path)
  return path


def test_same_seed_same_text_other_seed_other_text(workdir):
  a = sample_lib.sample(workdir, "ROMEO:", length=40, temperature=1.0, seed=0)
  b = sample_lib.sample(workdir, "ROMEO:", length=40, temperature=1.0, seed=0)
  c = sample_lib.sample(workdir, "ROMEO:", length=40, temperature=1.0, seed=1)
  assert a == b != c
  assert a.startswith("ROMEO:") and len(a) == len("ROMEO:") + 40


def test_greedy_generation_follows_the_parallel_argmax():
  model = LanguageModel(7, features=8, num_layers=1, cell="mingru", conv_kernel_size=2,
                        mlp_expansion=2, rngs=nnx.Rngs(0))
  prompt = jnp.array([[1, 2, 3]], jnp.int32)
  tokens = make_generator(model, length=5, temperature=0.0)(prompt, jax.random.key(0))
  # Feeding prompt + generated text back in parallel: each generated token is the argmax
  # of the logits one position before it.
  full = jnp.concatenate([prompt, tokens], axis=1)
  logits, _ = model(full)
  np.testing.assert_array_equal(jnp.argmax(logits[0, 2:-1], -1), tokens[0])


def test_top_k_one_is_greedy_and_bad_arguments_are_rejected():
  model = LanguageModel(7, features=8, num_layers=1, cell="mingru", rngs=nnx.Rngs(0))
  prompt = jnp.array([[1, 2]], jnp.int32)
  greedy = make_generator(model, length=4, temperature=0.0)(prompt, jax.random.key(0))
  top1 = make_generator(model, length=4, temperature=2.0, top_k=1)(prompt, jax.random.key(5))
  np.testing.assert_array_equal(greedy, top1)
  with pytest.raises(ValueError, match="top_k"):
    make_generator(model, length=4, top_k=8)
  with pytest.raises(ValueError, match="prompt"):
    make_generator(model, length=4)(jnp.zeros((1, 0), jnp.int32), jax.random.key(0))


def test_sample_command_line_prints_the_continuation(workdir):
  proc = subprocess.run(
      [sys.executable, "-m", "minrnn.sample", "--workdir", str(workdir), "--prompt", "ROMEO:",
       "--length", "30", "--seed", "3", "--top_k", "5"],
      cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith("ROMEO:")
  expected = sample_lib.sample(workdir, "ROMEO:", length=30, top_k=5, seed=3)
  assert proc.stdout.rstrip("\n") == expected.rstrip("\n")


def test_missing_run_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="not a training run"):
    sample_lib.sample(tmp_path, "ROMEO:")
