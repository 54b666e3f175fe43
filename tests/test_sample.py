"""Sampling: determinism with a fixed seed, greedy decoding, the command line, bad arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minrnn import sample as sample_lib
from minrnn import train as train_lib
from minrnn.models import make_generator, sample_token


@pytest.fixture(scope="module")
def workdir(tiny_run, tmp_path_factory):
  path = tmp_path_factory.mktemp("run")
  config = tiny_run("shakespeare", num_steps=20)
  config.train.eval_every = 10
  train_lib.train(config, path)
  return path


def test_temperature_divides_the_logits():
  logits = jnp.array([[2.0, 0.5, -1.0, 0.0, 1.5], [0.0, 3.0, 1.0, -2.0, 0.5]])
  for temperature in (0.3, 0.8, 2.0):
    for seed in range(5):
      key = jax.random.key(seed)
      np.testing.assert_array_equal(
          sample_token(logits, key, temperature, None),
          jax.random.categorical(key, logits / temperature, axis=-1))
  # Temperature 0 is the argmax.
  np.testing.assert_array_equal(sample_token(logits, jax.random.key(0), 0.0, None), [0, 1])


def test_top_k_samples_only_among_the_k_most_likely():
  logits = jnp.array([[2.0, 0.5, -1.0, 0.0, 1.5], [0.0, 3.0, 1.0, -2.0, 0.5]])
  # The two most likely tokens of each row, by hand: {0, 4} and {1, 2}.
  masked = jnp.array([[2.0, -jnp.inf, -jnp.inf, -jnp.inf, 1.5],
                      [-jnp.inf, 3.0, 1.0, -jnp.inf, -jnp.inf]])
  for seed in range(20):
    key = jax.random.key(seed)
    got = sample_token(logits, key, 0.7, 2)
    np.testing.assert_array_equal(got, jax.random.categorical(key, masked / 0.7, axis=-1))
    assert got[0] in (0, 4) and got[1] in (1, 2)


def test_same_seed_same_text_other_seed_other_text(workdir):
  a = sample_lib.sample(workdir, "ROMEO:", length=40, temperature=1.0, seed=0)
  b = sample_lib.sample(workdir, "ROMEO:", length=40, temperature=1.0, seed=0)
  c = sample_lib.sample(workdir, "ROMEO:", length=40, temperature=1.0, seed=1)
  assert a == b != c
  assert a.startswith("ROMEO:") and len(a) == len("ROMEO:") + 40


@pytest.mark.parametrize("cell", ["mingru", "transformer"])
def test_greedy_generation_follows_the_parallel_argmax(tiny_lm, cell):
  model = tiny_lm(cell, vocab_size=7, features=8, num_layers=1, conv_kernel_size=2,
                  cell_kwargs={"num_heads": 2} if cell == "transformer" else {})
  prompt = jnp.array([[1, 2, 3]], jnp.int32)
  tokens = make_generator(model, length=5, temperature=0.0)(prompt, jax.random.key(0))
  # Feeding prompt + generated text back in parallel: each generated token is the argmax
  # of the logits one position before it.
  full = jnp.concatenate([prompt, tokens], axis=1)
  logits, _ = model(full)
  np.testing.assert_array_equal(jnp.argmax(logits[0, 2:-1], -1), tokens[0])


def test_top_k_one_is_greedy_and_bad_arguments_are_rejected(tiny_lm):
  model = tiny_lm("mingru", vocab_size=7, features=8, num_layers=1)
  prompt = jnp.array([[1, 2]], jnp.int32)
  greedy = make_generator(model, length=4, temperature=0.0)(prompt, jax.random.key(0))
  top1 = make_generator(model, length=4, temperature=2.0, top_k=1)(prompt, jax.random.key(5))
  np.testing.assert_array_equal(greedy, top1)
  with pytest.raises(ValueError, match="top_k"):
    make_generator(model, length=4, top_k=8)
  with pytest.raises(ValueError, match="prompt"):
    make_generator(model, length=4)(jnp.zeros((1, 0), jnp.int32), jax.random.key(0))


def test_sample_command_line_prints_the_continuation(run_cli, workdir):
  proc = run_cli("sample", "--workdir", workdir, "--prompt", "ROMEO:", "--length", "30",
                 "--seed", "3", "--top_k", "5")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith("ROMEO:")
  expected = sample_lib.sample(workdir, "ROMEO:", length=30, top_k=5, seed=3)
  assert proc.stdout.rstrip("\n") == expected.rstrip("\n")


def test_missing_run_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="not a training run"):
    sample_lib.sample(tmp_path, "ROMEO:")


def test_a_run_saved_before_the_new_model_settings_samples_as_before(workdir, tmp_path):
  import json
  import shutil
  old = tmp_path / "old"
  shutil.copytree(workdir, old)
  saved = json.loads((old / "config.json").read_text())
  for key in ("init", "conv_residual", "mlp_gated", "emb_dropout"):
    del saved["model"][key]  # The keys a run saved before they existed lacks.
  (old / "config.json").write_text(json.dumps(saved))
  assert (sample_lib.sample(old, "ROMEO:", length=20, seed=2)
          == sample_lib.sample(workdir, "ROMEO:", length=20, seed=2))


def test_a_non_finite_temperature_is_refused_in_one_line(workdir, capsys, tiny_lm):
  for value in ("nan", "inf", "-inf", "1e999"):
    with pytest.raises(SystemExit) as status:
      sample_lib.main(["--workdir", str(workdir), f"--temperature={value}"])
    assert status.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: python -m minrnn.sample: argument --temperature: {value!r} is not a finite "
        "number (see --help)"]
  with pytest.raises(ValueError, match="temperature must be a finite number"):
    make_generator(tiny_lm(), length=3, temperature=float("nan"))


def test_a_damaged_best_checkpoint_points_to_the_latest(workdir, tmp_path):
  import shutil
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  for path in (copy / "best").rglob("*"):
    if path.is_file() and "state" in path.parts:
      path.write_bytes(b"damaged")
  with pytest.raises(Exception, match=r"(?s)it is damaged.*Sample the latest checkpoint with "
                                      r"--checkpoint latest") as error:
    sample_lib.sample(copy, "ROMEO:", length=5)
  assert "resume" not in str(error.value)
  assert sample_lib.sample(copy, "ROMEO:", length=5, checkpoint="latest").startswith("ROMEO:")


def test_sampling_prints_no_training_warning(workdir, tmp_path, caplog):
  import json
  import shutil
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  saved = json.loads((copy / "config.json").read_text())
  saved["train"]["warmup_steps"] = 10 * saved["train"]["num_steps"]  # Warns when training.
  (copy / "config.json").write_text(json.dumps(saved))
  with caplog.at_level("WARNING"):
    assert sample_lib.sample(copy, "ROMEO:", length=5).startswith("ROMEO:")
  assert not caplog.records, [r.getMessage() for r in caplog.records]
