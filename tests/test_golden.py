"""Golden losses: a few fixed-seed training steps of every config family at a tiny size.

The expected numbers in `golden_losses.json` were recorded from the code before the upper half
of the package was reorganised (one temporal-layer interface, layered folders); a reorganisation
must not move them. The settings were then written in the old config layout; the layout changed
with the reorganisation (SRU++'s options moved under `model.cell_kwargs`, its block shape and
head became settings, D4RL's rollout mode a setting), and the runs below say the same things in
the new one. The file keeps one record per JAX version that CI runs (`.ci/run`: the oldest
and the newest supported); a version without a record is compared with the newest one. A change
that is meant to alter the maths re-records them under each of those versions
(`python tests/test_golden.py` in each of `.ci/run`'s environments) and says why in its commit.

Every run: 3 training steps (a loss logged at each), one evaluation at step 3, and for D4RL a
short rollout. The settings are written out in full below, so that moving config files cannot
change them.

How close is equal (`tolerance`). Equal bits hold only on one kind of processor: XLA's CPU code
depends on the instruction set it finds (the vector width reorders sums, FMA fuses a multiply
and an add), so two machines round a few operations differently. Measured over these runs, with
JAX 0.10.2 and 0.12.1, code for SSE4.2, AVX2 and AVX-512 (`XLA_FLAGS=--xla_cpu_max_isa=...`):
float32 values differ by at most 3 ulps. The bound allowed is what rounding can do in three
float32 steps: a loss is a mean over at most 64 scored positions, and a float32 sum of n terms
evaluated in another order may differ by about log2(n) roundings, so 6 ulps a step, 18 for the
third loss (and the evaluation and rollouts after it). ARM's NEON code differs from x86's in the
same two ways (a 4-wide vector, FMA) and is held to the same bound. Between JAX releases
derivative rules may change too (since JAX 0.11 the derivative of tanh is (1 + y)(1 - y)), so a
version compared with another's record gets a relative 1e-5. A bfloat16 run rounds its
activations to 8 bits: one activation or gradient element rounded the other way moves its losses
by about 2^-8 of that element's share, measured at 2.5e-5 of the third loss between JAX 0.10.2
and 0.12; it gets a relative 2^-13 (1.2e-4). What these bounds still catch is measured in the
closing test below: a learning rate changed by 1 part in 10^4 fails it.
"""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import numpy as np
import pytest
from ml_collections import config_dict

import datasets
from minrnn import train as train_lib
from minrnn.data import paths
from minrnn.training.config import base_config, block_defaults, lm_defaults
from minrnn.training.metrics import read_metrics, series

GOLDEN = pathlib.Path(__file__).with_name("golden_losses.json")
MESH = {"data": -1, "sequence": 1, "model": 1}
TRAIN = {"stop_at_step": None, "keep_checkpoints": 1, "progress_bar": False,
         "tensorboard": False, "optimizer": "adamw", "weight_decay_on": "matrices",
         "num_steps": 3, "learning_rate": 3e-3, "end_learning_rate": 3e-4, "warmup_steps": 1,
         "weight_decay": 0.1, "b1": 0.9, "b2": 0.99, "grad_clip": 1.0, "log_every": 1,
         "eval_every": 3, "checkpoint_every": 3, "grad_accum_steps": 1, "best_metric": "loss",
         "early_stopping_patience": None}


def _residual(cell, **overrides):
  model = {"cell": cell, "cell_kwargs": {}, "features": 16, "num_layers": 1,
           "conv_kernel_size": 4, "mlp_expansion": 2, "dropout": 0.1, "tie_embeddings": True,
           "implementation": None, "softmax_chunk_size": None, "dtype": "float32"}
  return {**model, **overrides}


def _srupp(**overrides):
  model = {"cell": "srupp", "features": 16, "num_layers": 2,
           "cell_kwargs": {"proj_features": 8, "attention_every": 2, "memory_length": 16,
                           "dropout": 0.1, "attn_dropout": 0.1, "highway_bias": -2.0,
                           "attn_layer_norm": True, "layer_norm": False},
           "conv_kernel_size": 0, "mlp_expansion": 0, "dropout": 0.0, "pre_norm": False,
           "residual": False, "final_norm": False, "io_dropout": 0.1, "tie_embeddings": False,
           "head_bias": True, "adaptive_cutoffs": None, "div_val": 4, "embed_features": None,
           "softmax_chunk_size": None, "implementation": None, "dtype": "float32"}
  return {**model, **overrides}


SHAKESPEARE = {"name": "shakespeare", "dir": None, "download": False, "batch_size": 4,
               "seq_len": 16, "eval_batches": 1}
COPY = {"name": "selective_copy", "batch_size": 8, "seq_len": 12, "num_tokens": 2,
        "vocab_size": 16, "eval_batches": 1, "val_seed": 0, "test_seed": 1}
FORMAL = {"name": "formal_language", "task": "bucket_sort", "batch_size": 4, "min_len": 1,
          "max_len": 6, "eval_min_len": 6, "eval_max_len": 10, "eval_batches": 1}
ENWIK8 = {"name": "enwik8", "dir": None, "download": False, "verify_checksum": False,
          "cache_dir": None, "batch_size": 2, "seq_len": 16, "eval_batch_size": 2,
          "eval_seq_len": 16, "eval_batches": 2}
WIKITEXT = {"name": "wikitext103", "dir": None, "download": False, "cache_dir": None,
            "batch_size": 2, "seq_len": 16, "eval_batch_size": 2, "eval_seq_len": 16,
            "eval_batches": 2}
def _d4rl(mode):
  return {"name": "d4rl", "env": "hopper", "dataset": "medium", "dir": None,
          "file": "d4rl/hopper_medium-v2.hdf5", "batch_size": 4, "context": 4,
          "return_scale": 1000.0, "max_timestep": 1000, "eval_fraction": 0.25,
          "eval_batches": 1, "padding": "end",
          "rollouts": {"target_returns": [3600.0, 1800.0], "num_episodes": 1, "mode": mode,
                       "seed": 1000, "max_steps": 5, "progress_bar": False}}


D4RL_MODEL = {"cell_kwargs": {}, "features": 16, "num_layers": 1, "conv_kernel_size": 0,
              "mlp_expansion": 2, "dropout": 0.1, "implementation": None, "dtype": "float32"}

# name -> (data, model, seed); data "dir" None is filled with the fixtures' data directory
# (`datasets.write_all`).
RUNS = {
    "copy_mingru": (COPY, _residual("mingru"), 0),
    "shakespeare_mingru": (SHAKESPEARE, _residual("mingru"), 0),
    "shakespeare_mingru_bf16": (SHAKESPEARE, _residual("mingru", dtype="bfloat16"), 0),
    "shakespeare_minlstm": (SHAKESPEARE, _residual("minlstm"), 0),
    "shakespeare_gru": (SHAKESPEARE, _residual("gru"), 0),
    "shakespeare_lstm": (SHAKESPEARE, _residual("lstm"), 0),
    "shakespeare_sru": (SHAKESPEARE, _residual(
        "sru", cell_kwargs={"dropout": 0.1, "rnn_dropout": 0.1, "layer_norm": True}), 0),
    "shakespeare_mamba": (SHAKESPEARE, _residual(
        "mamba", conv_kernel_size=0,
        cell_kwargs={"state_size": 4, "expand": 2, "conv_kernel_size": 4}), 0),
    "shakespeare_transformer": (SHAKESPEARE, _residual(
        "transformer", conv_kernel_size=0, num_layers=2, cell_kwargs={"num_heads": 2}), 0),
    "formal_bucket_sort_minlstm": (FORMAL, _residual("minlstm"), 0),
    "enwik8_srupp": (ENWIK8, _srupp(), 1234),
    "enwik8_mingru": (ENWIK8, _residual("mingru", tie_embeddings=False), 1234),
    "wikitext103_srupp": (WIKITEXT, _srupp(tie_embeddings=True, head_bias=False,
                                           adaptive_cutoffs=[8, 16, 24], embed_features=16,
                                           emb_dropout=0.1, softmax_chunk_size=12), 1234),
    "wikitext103_mingru": (WIKITEXT, _residual("mingru", softmax_chunk_size=12), 1234),
    "d4rl_mingru": (_d4rl("step"), {"cell": "mingru", **D4RL_MODEL}, 0),
    "d4rl_transformer": (_d4rl("window"), {"cell": "transformer", **D4RL_MODEL,
                                           "cell_kwargs": {"num_heads": 1}}, 0),
}


def golden_config(name: str, data_dir: pathlib.Path) -> config_dict.ConfigDict:
  data, model, seed = RUNS[name]
  config = base_config()
  config.mesh = config_dict.ConfigDict(MESH)
  config.train = config_dict.ConfigDict(TRAIN)
  config.seed = seed
  config.data = config_dict.ConfigDict(
      {**data, "dir": str(data_dir)} if "dir" in data else data)
  config.model = block_defaults() if data["name"] == "d4rl" else lm_defaults()
  config.model.update(model)
  return config


def run(name: str, data_dir: pathlib.Path, workdir: pathlib.Path) -> dict:
  """What the golden file pins for one run: losses per step, evaluation, rollout returns."""
  return pinned(golden_config(name, data_dir), workdir)


def pinned(config: config_dict.ConfigDict, workdir: pathlib.Path) -> dict:
  """What the golden file pins of the run of `config` (trained in `workdir`)."""
  result = train_lib.train(config, workdir)
  steps, losses = series(read_metrics(workdir / "metrics.jsonl"), "train", "loss")
  # Losses only: which other metrics a task reports is not what the golden file pins.
  values = {"steps": steps, "train_loss": losses, "eval_loss": result["eval"]["loss"]}
  if "splits" in result:
    values["split_loss"] = {split: m["loss"] for split, m in result["splits"].items()}
  rollouts = result.get("final_evaluation", {}).get("targets")
  if rollouts:
    values["rollout_returns"] = {t: r["returns"] for t, r in rollouts.items()}
  return values


def _version_key(version: str) -> tuple[int, ...]:
  return tuple(int(part) for part in version.split("."))


# See the module docstring: the third float32 step's bound (3 steps x log2(64 positions)
# roundings), the relative bound between JAX releases, and the bfloat16 runs' relative bound.
SAME_VERSION_ULPS = 18
OTHER_VERSION_RTOL = 1e-5
BFLOAT16_RTOL = 2.0 ** -13


def tolerance(name: str, want: float, same_version: bool) -> float:
  """The largest difference from the recorded value `want` that rounding explains."""
  if RUNS[name][1].get("dtype") == "bfloat16":
    return BFLOAT16_RTOL * abs(want)
  if not same_version:
    return OTHER_VERSION_RTOL * abs(want)
  return SAME_VERSION_ULPS * float(np.spacing(np.float32(abs(want))))


def differences(got, want, bound, where: str) -> list[str]:
  """Every number of `got` further than `bound(value)` from `want`'s, and every difference of
  structure or of anything that is not a float, as `where: got != want` lines."""
  if isinstance(want, dict) and isinstance(got, dict) and sorted(got) == sorted(want):
    return [line for key in sorted(want)
            for line in differences(got[key], want[key], bound, f"{where}.{key}")]
  if isinstance(want, list) and isinstance(got, list) and len(got) == len(want):
    return [line for i, (g, w) in enumerate(zip(got, want))
            for line in differences(g, w, bound, f"{where}[{i}]")]
  if isinstance(want, float) and isinstance(got, float):
    ulps = abs(got - want) / float(np.spacing(np.float32(abs(want))))
    return ([f"{where}: {got!r} != {want!r} ({ulps:.1f} float32 ulps)"]
            if abs(got - want) > bound(want) else [])
  return [] if got == want else [f"{where}: {got!r} != {want!r}"]


def record_for(version: str) -> tuple[str, bool]:
  """`(the record's JAX version, whether it is this one)`: this version's, else the newest."""
  records = json.loads(GOLDEN.read_text())["jax"]
  if version in records:
    return version, True
  return max(records, key=_version_key), False


@pytest.mark.parametrize("name", sorted(RUNS))
def test_golden_losses(name, fixture_data_dir, tmp_path):
  if name.startswith("d4rl"):
    pytest.importorskip("h5py", reason="D4RL files are hdf5 (the `rl` extra)")
    pytest.importorskip("gymnasium", reason="rollouts need gymnasium[mujoco] (the `rl` extra)")
  version, same_version = record_for(jax.__version__)
  want = json.loads(GOLDEN.read_text())["jax"][version][name]
  # Floats as the file has them.
  got = json.loads(json.dumps(run(name, fixture_data_dir, tmp_path)))
  found = differences(got, want, lambda w: tolerance(name, w, same_version), name)
  assert not found, (f"jax {jax.__version__}, record of {version}:\n" + "\n".join(found))


def test_a_changed_step_is_caught(fixture_data_dir, tmp_path):
  """A learning rate changed by 1 part in 10^3 moves this run's third loss by about 100 float32
  ulps and its evaluation by about 700 (measured), far beyond what rounding explains under
  either bound (18 ulps; a relative 1e-5, about 110 ulps here)."""
  config = golden_config("enwik8_mingru", fixture_data_dir)
  config.train.learning_rate *= 1 + 1e-3
  version, same_version = record_for(jax.__version__)
  want = json.loads(GOLDEN.read_text())["jax"][version]["enwik8_mingru"]
  got = json.loads(json.dumps(pinned(config, tmp_path)))
  found = differences(got, want, lambda w: tolerance("enwik8_mingru", w, same_version), "")
  assert ".eval_loss" in {line.split(":")[0] for line in found}, found
  if same_version:
    assert ".train_loss[2]" in {line.split(":")[0] for line in found}, found


if __name__ == "__main__":
  # Re-records every run (only when the maths is meant to change; say why in the commit).
  import tempfile

  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    fixtures = datasets.write_all(tmp / "data", paths.data_dir())
    names = sys.argv[1:] or sorted(RUNS)
    records = json.loads(GOLDEN.read_text())["jax"] if GOLDEN.exists() else {}
    recorded = records.setdefault(jax.__version__, {})
    for name in names:
      recorded[name] = run(name, fixtures, tmp / name)
      print(name, recorded[name]["train_loss"])
  GOLDEN.write_text(json.dumps({"jax": records}, indent=1, sort_keys=True) + "\n")
