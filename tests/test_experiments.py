"""Every experiment script runs end to end at a tiny size and writes its table and figure."""

import importlib.util
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_MODEL = ["model.features=16", "model.num_layers=1", "model.mlp_expansion=2",
              "train.warmup_steps=1", "train.tensorboard=False"]


def _script(name, file="run.py"):
  spec = importlib.util.spec_from_file_location(f"experiment_{name}_{pathlib.Path(file).stem}",
                                                REPO / "experiments" / name / file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _overrides(*items):
  return [arg for item in (*TINY_MODEL, *items) for arg in ("--override", item)]


def _outputs(out_dir, name):
  paths = [out_dir / f"{name}.{ext}" for ext in ("json", "md", "png")]
  assert all(p.stat().st_size > 0 for p in paths)
  return json.loads(paths[0].read_text()), paths[1].read_text()


def test_shakespeare(tmp_path):
  payload = _script("shakespeare").main([
      "--variant", "cpu", "--models", "transformer", "--workdir", str(tmp_path / "runs"),
      "--out_dir", str(tmp_path), "--eval_every", "2", "--name", "sh",
      *_overrides("data.batch_size=4", "data.seq_len=16", "data.eval_batches=1",
                  "train.num_steps=4")])
  data, table = _outputs(tmp_path, "sh")
  run = data["runs"]["transformer"]
  assert run["step"] == 4 and run["curve"]["steps"] == [2, 4]
  assert run["curve"]["best"] == min(run["curve"]["values"])
  assert "| Transformer | 1.547 | 2000 |" in table and data["environment"]["device"]
  assert payload["variant"] == "cpu"


def test_selective_copy_resumes_in_chunks(tmp_path):
  script = _script("selective_copy")
  # `--layers 3` picks the 3-layer config (the paper's reported row); the tiny model has 1.
  args = ["--variant", "cpu", "--models", "mingru", "--layers", "3",
          "--workdir", str(tmp_path / "runs"), "--out_dir", str(tmp_path), "--name", "sc",
          *_overrides("data.batch_size=4", "data.seq_len=12", "data.num_tokens=2",
                      "data.eval_batches=1", "train.num_steps=4", "train.eval_every=2")]
  first = script.main([*args, "--stop_at_step", "2"])
  assert first["runs"][0]["step"] == 2 and not first["runs"][0]["completed"]
  data, table = _outputs(tmp_path, "sc")
  heading = table.splitlines()[0]
  assert heading.startswith("# Selective copying (cpu configs): reduced from the paper's "
                            "protocol: ")
  assert "data.seq_len 12 (paper: 4096)" in heading and "model.num_layers 1 (paper: 3)" in heading
  assert "reduced, partial (2 of 4 steps)" in table
  assert heading.endswith("; partial: 1 of 1 runs stopped before their last step")
  second = script.main(args)
  run = second["runs"][0]
  assert "partial" not in _outputs(tmp_path, "sc")[1].splitlines()[0]
  assert run["step"] == 4 and run["completed"] and run["curve"]["steps"] == [2, 4]
  assert run["wall_s"] > first["runs"][0]["wall_s"]  # Summed over both chunks.
  test = run["best"]["splits"]["test"]
  row = (f"| minGRU | 3 | 99.5 ± 0.2 | {100 * test['accuracy']:.1f} "
         f"| {100 * test['sequence_accuracy']:.1f} | {100 * run['best']['value']:.1f} "
         f"| {run['best']['step']} | 4/4 | reduced |")
  assert row in _outputs(tmp_path, "sc")[1]


def test_formal_languages(tmp_path):
  payload = _script("formal_languages").main([
      "--variant", "cpu", "--models", "mingru", "--tasks", "bucket_sort", "--seeds", "0,1",
      "--workdir", str(tmp_path / "runs"), "--out_dir", str(tmp_path), "--name", "fl",
      *_overrides("data.batch_size=4", "data.max_len=6", "data.eval_min_len=6",
                  "data.eval_max_len=9", "data.eval_batches=1", "train.num_steps=2",
                  "train.eval_every=2")])
  runs = payload["runs"]
  assert [(r["task"], r["seed"]) for r in runs] == [("bucket_sort", 0), ("bucket_sort", 1)]
  assert all(r["score"] == r["eval"]["accuracy"] and 0.0 <= r["score"] <= 1.0 for r in runs)
  row = payload["table"][0]
  assert row["seeds"] == 2
  assert row["accuracy"] == pytest.approx(np.mean([r["score"] for r in runs]))
  for r in runs:  # Each seed's test strings, and so its chance level, are its own.
    assert r["scaled"] == pytest.approx((r["score"] - r["chance"]) / (1 - r["chance"]))
  assert row["scaled"] == pytest.approx(np.mean([r["scaled"] for r in runs]))
  chance = row["chance"]
  table = _outputs(tmp_path, "fl")[1]
  assert f"| bucket_sort | {100 * chance:.1f} | [NR] | {100 * row['accuracy']:.1f} |" in table
  assert "reduced: `cpu` configs" in table and "seeds 0, 1 (paper: 3 seeds)" in table
  assert payload["protocol"].startswith("reduced")


def test_runtime(tmp_path):
  payload = _script("runtime").main([
      "--batch", "2", "--features", "8", "--lengths", "8", "--models", "mingru,gru",
      "--out_dir", str(tmp_path), "--name", "rt"])
  records = {r["model"]: r for r in payload["records"]}
  assert set(records) == {"mingru", "gru"}
  assert all(r["status"] == "ok" and r["ms"] > 0 and r["bytes"] > 0 for r in records.values())
  assert "minGRU vs GRU" in _outputs(tmp_path, "rt")[1]


def test_srupp_protocol(tmp_path):
  payload = _script("long_context", "srupp_protocol.py").main([
      "--steps", "4", "--workdir", str(tmp_path / "runs"), "--out_dir", str(tmp_path),
      "--name", "sp", *[arg for item in (
          "model.features=16", "model.num_layers=2", "model.cell_kwargs.proj_features=8",
          "data.eval_batches=2", "final_test.max_batches=2", "train.tensorboard=False")
          for arg in ("--override", item)]])
  data, table = _outputs(tmp_path, "sp")
  assert "| SRU++ base, paper | official final test pass | enwik8 test | 0.974 | – |" in table
  test = data["final_test"]
  assert test["protocol"]["batch_size"] == 1 and sorted(test["splits"]) == ["test", "valid"]
  assert sorted(data["training_eval"]) == ["test", "valid"] and payload["run"]["step"] == 4


def test_d4rl_table_shows_the_papers_averages_and_labels_reductions():
  spec = importlib.util.spec_from_file_location("d4rl_table",
                                                REPO / "experiments" / "d4rl" / "table.py")
  table = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(table)
  entries = {"medium/hopper": {"mingru": {"mean": 50.0, "std": 1.0, "n": 5}}}
  text = table.markdown_table(entries, ["mingru"], "t", paper={"mingru": 78.2})
  assert "| Medium | Hopper | [NR] | 50.0 ± 1.0 |" in text
  assert "| **Average** | | 78.2 [S] | 50.0 |" in text
  assert table.protocol_label(table.parse_args(["--workdir", "w"])) == "paper protocol"
  reduced = table.protocol_label(table.parse_args(
      ["--workdir", "w", "--variant", "cpu", "--seeds", "0", "--set", "train.num_steps=9"]))
  assert reduced == ("reduced: `cpu` configs; overrides `train.num_steps=9`; seeds 0 "
                     "(paper: 5 seeds)")


def test_listops_ablation(tmp_path):
  payload = _script("listops").main([
      "--variant", "cpu", "--models", "mingru", "--blocks", "full,no_conv_no_mlp",
      "--seeds", "0", "--workdir", str(tmp_path / "runs"), "--out_dir", str(tmp_path),
      "--name", "lo", *[arg for item in (
          "model.features=16", "model.num_layers=1", "train.warmup_steps=1",
          f"data.dir='{tmp_path / 'data'}'", "data.train_size=8", "data.valid_size=4",
          "data.test_size=4", "data.batch_size=4", "data.eval_batch_size=4", "data.max_depth=3",
          "data.max_args=3", "data.min_length=4", "data.max_length=16", "train.num_steps=2",
          "train.eval_every=2") for arg in ("--override", item)]])
  runs = payload["runs"]
  assert [(r["blocks"], r["step"]) for r in runs] == [("full", 2), ("no_conv_no_mlp", 2)]
  for run in runs:
    assert run["test_accuracy"] == run["best"]["splits"]["test"]["accuracy"]
    assert "model.num_layers 1 (paper: 8)" in run["differences"]
    # Each run is compared with the paper's config of its own blocks: the ablation is no cut.
    assert not any(d.startswith(("model.conv", "model.mlp")) for d in run["differences"])
  table = _outputs(tmp_path, "lo")[1]
  heading = table.splitlines()[0]
  assert heading.startswith("# ListOps and its ablation (cpu configs): reduced from the "
                            "paper's protocol: ")
  assert "data.max_length 16 (paper: 2000)" in heading and heading.endswith(
      "seeds 0 (paper: 3 seeds)")
  full = payload["table"][0]
  assert (f"| minGRU | Conv4 → minRNN → MLP | [NR] | {100 * full['test']:.1f} ± 0.0 |"
          in table)
  assert "xLSTM 41.1" in table and "LSTM (Block) 49.5" in table
  assert 0.25 <= payload["majority_share"] <= 1.0


@pytest.mark.parametrize("name,argv,message", [
    ("selective_copy", ["--models", "mingru,bogus"], "--models 'mingru,bogus': unknown 'bogus'"),
    ("selective_copy", ["--layers", "3x"], "--layers '3x' must be whole numbers"),
    ("selective_copy", ["--layers", "3,5"], "Unknown variant part '5l'"),
    ("selective_copy", ["--override", "train.lr=1"], "Did you mean train.learning_rate?"),
    ("shakespeare", ["--models", "mingru,bogus"], "--models 'mingru,bogus': unknown 'bogus'"),
    ("shakespeare", ["--override", "train.num_stpes=3"], "Did you mean train.num_steps"),
    ("formal_languages", ["--tasks", "parity_check,bogus"], "--tasks 'parity_check,bogus'"),
    ("formal_languages", ["--seeds", "0,x"], "--seeds '0,x' must be whole numbers"),
    ("formal_languages", ["--override", "model.featurs=3"], "Did you mean model.features"),
])
def test_bad_arguments_are_refused_before_any_run_trains(tmp_path, monkeypatch, name, argv,
                                                         message):
  script = _script(name)
  monkeypatch.setattr(script.reporting, "train_run", lambda *a: pytest.fail("a run trained"))
  with pytest.raises(ValueError, match=re.escape(message)):
    script.main(["--variant", "cpu", *argv, "--workdir", str(tmp_path / "runs"),
                 "--out_dir", str(tmp_path)])
  assert not (tmp_path / "runs").exists()


def test_a_runner_mistake_is_one_line_with_exit_status_2(tmp_path):
  proc = subprocess.run([sys.executable, str(REPO / "experiments" / "selective_copy" / "run.py"),
                         "--variant", "huge", "--workdir", str(tmp_path)],
                        capture_output=True, text=True, timeout=300, cwd=REPO)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines() == [
      proc.stderr.splitlines()[0], "(run with MINRNN_VERBOSE=1 for the traceback)"]
  assert proc.stderr.startswith("error: Unknown variant part 'huge'")


@pytest.mark.parametrize("name,file,argv", [
    ("inference", "run.py", ["--budget_s", "nan"]),
    ("inference", "run.py", ["--repeat_s", "1e999"]),
    ("runtime", "run.py", ["--budget_s", "inf"]),
    ("scaling", "longest_sequence.py", ["--mem_fraction", "nan"]),
])
def test_non_finite_numbers_are_refused_in_one_line(capsys, name, file, argv):
  script = _script(name, file)
  parse = getattr(script, "parse_args", None) or script._parse_args
  with pytest.raises(SystemExit) as status:
    parse(argv)
  assert status.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and f"{argv[1]!r} is not a finite number" in err[0], err
