"""The best checkpoint and early stopping: `train.best_metric` picks `best/` (larger is better for
accuracies, smaller for losses), `train.early_stopping_patience` ends a run after that many
evaluations without a strictly better value, `final_eval.json` reports the best evaluation and
the test split scored with the best checkpoint's parameters, an early-stopped run resumes as
finished, and the patience may grow on resume like the step budget."""

import json
import math

import jax.numpy as jnp
import pytest

from minrnn import train as train_lib
from minrnn.tasks import make_task
from minrnn.training.checkpointing import Checkpoints
from minrnn.training.loop import prepare
from minrnn.training.metrics import read_metrics, series
from minrnn.training.selection import Selection
from minrnn.training.steps import create_state


def test_selection_counts_evaluations_without_a_strictly_better_value():
  accuracy = Selection("accuracy", higher_is_better=True, patience=2)
  assert [accuracy.update({"accuracy": v}) for v in (0.5, 0.7, 0.7, 0.6)] == \
      [True, True, False, False]
  assert accuracy.value == 0.7 and accuracy.evals_since_best == 2 and accuracy.stopped
  loss = Selection("loss", higher_is_better=False)
  assert [loss.update({"loss": v}) for v in (2.0, math.nan, 1.5, 1.6)] == \
      [True, False, True, False]
  assert loss.value == 1.5 and not loss.stopped  # No patience: never stops.


def test_selection_survives_a_checkpoint_and_reads_old_ones():
  selection = Selection("accuracy", higher_is_better=True, patience=3)
  selection.update({"accuracy": 0.9})
  selection.update({"accuracy": 0.8})
  again = Selection("accuracy", higher_is_better=True, patience=3)
  again.restore(json.loads(json.dumps(selection.meta())))
  assert (again.value, again.evals_since_best) == (0.9, 1)
  # Checkpoints from before early stopping existed hold the best loss alone.
  old = Selection("loss", higher_is_better=False)
  old.restore({"step": 4, "best_eval_loss": 1.25})
  assert (old.value, old.evals_since_best) == (1.25, 0)
  old.restore({"step": 4, "best_eval_loss": math.inf})
  assert old.value is None


@pytest.mark.parametrize("patience", [0, 1.5, "3"])
def test_a_bad_patience_is_a_clear_error(patience):
  with pytest.raises(ValueError, match="early_stopping_patience must be None"):
    Selection("loss", higher_is_better=False, patience=patience)


def _frozen(tiny_run, num_steps=10, patience=1):
  """A tiny copying run whose parameters never move (learning rate 0): every evaluation of the
  fixed validation set is the same, so none after the first is better."""
  config = tiny_run("copy", num_steps=num_steps)
  config.train.learning_rate = config.train.end_learning_rate = 0.0
  config.train.eval_every = 2
  config.train.checkpoint_every = 100
  config.train.early_stopping_patience = patience
  return config


def _train_steps(workdir):
  return series(read_metrics(workdir / "metrics.jsonl"), "train", "loss")[0]


def test_patience_stops_the_run_and_it_resumes_as_finished(tiny_run, tmp_path):
  config = _frozen(tiny_run, patience=1)
  result = train_lib.train(config, tmp_path)
  # Best at the first evaluation (step 2); step 4's is no better: patience 1 is spent.
  assert result["step"] == 4 and result["stopped_early"] and result["completed"]
  assert result["best"]["step"] == 2 and result["best"]["metric"] == "accuracy"
  assert _train_steps(tmp_path) == [1, 2, 3, 4]
  saved = json.loads((tmp_path / "final_eval.json").read_text())
  assert saved["stopped_early"] and saved["best"]["step"] == 2
  again = train_lib.train(config, tmp_path)
  assert again["step"] == 4 and again["stopped_early"] and _train_steps(tmp_path) == [1, 2, 3, 4]


def test_a_larger_patience_continues_the_run_as_if_it_never_stopped(tiny_run, tmp_path):
  train_lib.train(_frozen(tiny_run, patience=1), tmp_path / "resumed")
  longer = _frozen(tiny_run, patience=3)
  result = train_lib.train(longer, tmp_path / "resumed")  # A safe change: no error.
  straight = train_lib.train(longer, tmp_path / "straight")
  assert result["step"] == straight["step"] == 8 and result["stopped_early"]
  losses = [series(read_metrics(tmp_path / name / "metrics.jsonl"), "train", "loss")
            for name in ("resumed", "straight")]
  assert losses[0] == losses[1]


def _test_loss_of_checkpoint(config, directory):
  """The test split's mean loss for the parameters saved in `directory`, computed here from
  the task's test batches and the model's log-probabilities."""
  task = make_task(config.data, config.seed)
  state = create_state(config, task)
  best = Checkpoints(directory, keep=1)
  tree, _ = best.restore(best.latest_step(), state.checkpoint_tree())
  best.close()
  state.params = tree["params"]
  model = state.model()
  total = weight = 0.0
  for batch in task.eval_batches("test"):
    log_probs, _, _ = model.target_log_probs(jnp.asarray(batch["inputs"]),
                                             jnp.asarray(batch["targets"]), None)
    total -= float(jnp.sum(log_probs * batch["weights"]))
    weight += float(batch["weights"].sum())
  return total / weight


def test_the_test_split_is_scored_with_the_best_checkpoint(tiny_run, tmp_path):
  config = tiny_run("copy", num_steps=6)
  config.model.dropout = 0.0
  # Gradient ascent: every evaluation is worse than the one before, so the best checkpoint is
  # the first one (step 2), not the last.
  config.train.learning_rate = config.train.end_learning_rate = -3e-2
  config.train.warmup_steps = 0
  config.train.eval_every = 2
  config.train.best_metric = "loss"
  config.train.early_stopping_patience = None
  result = train_lib.train(config, tmp_path)
  best = result["best"]
  assert best["step"] == 2 and result["step"] == 6 and not result["stopped_early"]
  expected = _test_loss_of_checkpoint(config, tmp_path / "best")
  assert best["splits"]["test"]["loss"] == pytest.approx(expected, rel=1e-5)
  assert best["splits"]["test"]["loss"] < result["splits"]["test"]["loss"]
  first_eval = series(read_metrics(tmp_path / "metrics.jsonl"), "eval", "loss")[1][0]
  assert best["value"] == pytest.approx(first_eval) and best["eval"]["loss"] == best["value"]


def test_an_unknown_best_metric_is_a_clear_error(tiny_run, tmp_path):
  config = tiny_run("shakespeare")
  config.train.best_metric = "sequence_accuracy"  # Not reported for a character LM.
  with pytest.raises(ValueError, match="best_metric='sequence_accuracy' is not an evaluation "
                                       "metric of the shakespeare task; choose one of accuracy"):
    prepare(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_a_run_saved_before_the_new_settings_resumes(tiny_run, tmp_path):
  config = tiny_run("copy", num_steps=2)
  config.train.best_metric = "loss"
  config.train.grad_accum_steps = 1
  train_lib.train(config, tmp_path)
  # The config of a run trained before these settings existed.
  saved = json.loads((tmp_path / "config.json").read_text())
  for key in ("grad_accum_steps", "best_metric", "early_stopping_patience"):
    del saved["train"][key]
  for key in ("init", "conv_residual", "mlp_gated", "emb_dropout"):
    del saved["model"][key]
  (tmp_path / "config.json").write_text(json.dumps(saved))
  config.train.num_steps = 3  # Their values now are what the code did then: no change.
  assert train_lib.train(config, tmp_path)["step"] == 3
  config.train.num_steps = 4
  config.train.grad_accum_steps = 2  # A real change is still refused.
  with pytest.raises(ValueError, match=r"train\.grad_accum_steps: 1 -> 2"):
    prepare(config, tmp_path)
