"""A training step that is not finite stops the run at once (or is skipped when asked), nothing
non-finite is saved, the last finite checkpoint is where a resume starts, a non-finite
evaluation is never the best, and the run's files stay strict JSON."""

import json
import math
import pathlib

import jax
import numpy as np
import pytest

from minrnn import sample as sample_lib
from minrnn import train as train_lib
from minrnn.training.checkpointing import Checkpoints
from minrnn.training.divergence import Diverged
from minrnn.training.loop import prepare
from minrnn.training.metrics import read_metrics, strict_json
from minrnn.training.selection import Selection


def _strict(path: pathlib.Path) -> list:
  """Every JSON document of a `.json` or `.jsonl` file, refusing NaN and Infinity."""
  def refuse(constant):
    raise ValueError(f"{path.name} holds {constant}, which is not JSON")
  lines = path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]
  return [json.loads(line, parse_constant=refuse) for line in lines if line.strip()]


def _all_finite(directory: pathlib.Path, template) -> dict[int, bool]:
  checkpoints = Checkpoints(directory, keep=10)
  try:
    return {step: all(np.isfinite(x).all()
                      for x in jax.tree.leaves(checkpoints.restore(step, template)[0]))
            for step in checkpoints.all_steps()}
  finally:
    checkpoints.close()


def _copy_run(tiny_run, num_steps, **train):
  config = tiny_run("copy", num_steps=num_steps)
  config.train.update({"eval_every": 2, "checkpoint_every": 2, "keep_checkpoints": 2,
                       "early_stopping_patience": None, **train})
  return config


def _poison(run, at_step: int):
  """Makes the batch of step `at_step` (counted from 1) score NaN: one non-finite step."""
  batch_of = run.task.train_batch

  def train_batch(step):
    batch = batch_of(step)
    if step + 1 == at_step:
      batch = dict(batch, weights=np.full_like(batch["weights"], np.nan))
    return batch
  run.task.train_batch = train_batch


def test_a_diverging_run_stops_at_once_and_keeps_its_last_finite_checkpoint(tiny_run, tmp_path):
  config = _copy_run(tiny_run, 6)
  train_lib.train(config, tmp_path)
  finished = (tmp_path / "final_eval.json").read_text()
  diverging = config.copy_and_resolve_references()
  diverging.train.update(num_steps=20, learning_rate=1e30, end_learning_rate=1e30)
  run = prepare(diverging, tmp_path, accept_config_changes=True)
  template = run.state.checkpoint_tree()
  with pytest.raises(Diverged, match=r"Training diverged at step (7|8|9): .* the last "
                                     r"checkpoint, of step 6, is finite"):
    run.train()
  # Nothing past the last finite checkpoint was saved or rotated: all of it is finite.
  assert _all_finite(tmp_path / "checkpoints", template) == {4: True, 6: True}
  assert all(_all_finite(tmp_path / "best", template).values())
  assert (tmp_path / "final_eval.json").read_text() == finished  # No result claimed.
  records = _strict(tmp_path / "metrics.jsonl")
  last = records[-1]
  assert last["split"] == "train" and last["skipped"] == 1 and last["step"] > 6
  assert not (tmp_path / "run.lock").exists()  # Released.
  # The last finite checkpoint is where a resume with a smaller learning rate starts.
  calm = config.copy_and_resolve_references()
  calm.train.num_steps = 10
  result = train_lib.train(calm, tmp_path, accept_config_changes=True)
  assert result["completed"] and math.isfinite(result["eval"]["loss"])
  steps = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train"]
  assert steps == list(range(1, 11))
  _strict(tmp_path / "final_eval.json")


def test_one_bad_step_stops_the_run_and_saves_nothing_of_it(tiny_run, tmp_path):
  config = _copy_run(tiny_run, 8, checkpoint_every=1, keep_checkpoints=10)
  run = prepare(config, tmp_path)
  template = run.state.checkpoint_tree()
  _poison(run, at_step=5)
  with pytest.raises(Diverged, match=r"step 5: the loss is nan .* of step 4"):
    run.train()
  assert _all_finite(tmp_path / "checkpoints", template) == {s: True for s in range(1, 5)}
  record = _strict(tmp_path / "metrics.jsonl")[-1]
  assert record == {"step": 5, "split": "train", "loss": None, "grad_norm": None,
                    "skipped": 1.0, "nonfinite": {"loss": "nan", "grad_norm": "nan"}}


def test_skipping_non_finite_steps_leaves_the_model_as_it_was(tiny_run, tmp_path, capsys):
  config = _copy_run(tiny_run, 8, skip_nonfinite_steps=1)
  run = prepare(config, tmp_path)
  _poison(run, at_step=5)
  result = run.train()
  assert result["completed"] and "Step 5 skipped" in capsys.readouterr().err
  records = read_metrics(tmp_path / "metrics.jsonl")
  skipped = [r["step"] for r in records if r.get("skipped")]
  assert skipped == [5]
  assert all(math.isfinite(r["loss"]) for r in records if r["split"] == "train"
             and not r.get("skipped"))
  # More non-finite steps in a row than allowed: the run stops after the limit.
  again = _copy_run(tiny_run, 12, skip_nonfinite_steps=2, learning_rate=1e30,
                    end_learning_rate=1e30)
  with pytest.raises(Diverged, match=r"after 2 skipped step\(s\) in a row"):
    train_lib.train(again, tmp_path / "many")
  streak = [r["step"] for r in read_metrics(tmp_path / "many" / "metrics.jsonl")
            if r.get("skipped")]
  assert len(streak) == 3 and streak == list(range(streak[0], streak[0] + 3))


def test_a_step_whose_update_is_not_finite_changes_nothing(tiny_run, tmp_path):
  run = prepare(_copy_run(tiny_run, 2), tmp_path)
  params = jax.device_get(run.state.params)
  # Optimizer moments gone infinite: the loss and gradient are finite, the update is not.
  broken = jax.tree.map(lambda x: np.full_like(x, np.inf) if x.dtype.kind == "f" else x,
                        jax.device_get(run.state.opt_state))
  new_params, new_opt_state, metrics, _ = run.train_step(
      params, broken, run.task.train_batch(0), jax.random.key(0), None)
  run.close(failed=True)
  assert np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
  assert not bool(metrics["finite"])
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(new_params), params)


def test_a_non_finite_evaluation_is_never_the_best():
  selection = Selection("accuracy", higher_is_better=True)
  # A diverged model predicts one token: accuracy 0, loss NaN. Not a best, even the first.
  assert not selection.update({"loss": math.nan, "accuracy": 0.0})
  assert selection.value is None
  assert selection.update({"loss": 2.0, "accuracy": 0.25})
  assert not selection.update({"loss": math.inf, "accuracy": 0.5})
  assert selection.value == 0.25


def test_files_stay_strict_json_with_the_non_finite_values_named():
  record = strict_json({"step": 3, "loss": math.nan, "eval": {"a": math.inf, "b": 1.0},
                        "splits": [{"c": -math.inf}]})
  assert record == {"step": 3, "loss": None, "nonfinite": {"loss": "nan"},
                    "eval": {"a": None, "b": 1.0, "nonfinite": {"a": "inf"}},
                    "splits": [{"c": None, "nonfinite": {"c": "-inf"}}]}
  json.dumps(record, allow_nan=False)


def test_sampling_refuses_a_checkpoint_that_is_not_finite(tiny_run, tmp_path):
  config = tiny_run("shakespeare", num_steps=2)
  config.train.checkpoint_every = 1
  train_lib.train(config, tmp_path)
  # A run saved before divergence was caught: its latest checkpoint holds NaN parameters.
  run = prepare(config.copy_and_resolve_references(), tmp_path / "other")
  template = run.state.checkpoint_tree()
  run.close(failed=True)
  checkpoints = Checkpoints(tmp_path / "checkpoints", keep=10)
  tree, meta = checkpoints.restore(2, template)
  poisoned = jax.tree.map(lambda x: np.full_like(x, np.nan) if x.dtype.kind == "f" else x, tree)
  checkpoints.save(3, poisoned, dict(meta, step=3))
  checkpoints.close()
  with pytest.raises(ValueError, match=r"latest checkpoint .* not finite: the run diverged.*"
                                       r"--checkpoint best"):
    sample_lib.sample(tmp_path, "ROMEO:", length=5, checkpoint="latest")
  assert sample_lib.sample(tmp_path, "ROMEO:", length=5).startswith("ROMEO:")
