"""The resolved paper configs of the model-side families against the papers' protocols, written
out here as literals from PROTOCOLS.md (the project's record of the papers' protocols, with
sources), never read back from the configs' own tables."""

import importlib.util
import pathlib

import pytest

from minrnn.training.config import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]
MIN_RNNS = ("mingru", "minlstm")
TASKS = [f"{env}-{dataset}" for env in ("halfcheetah", "hopper", "walker2d")
         for dataset in ("medium", "medium-replay", "medium-expert")]


def _experiment(path: str):
  spec = importlib.util.spec_from_file_location(path.replace("/", "_"), REPO / path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _check_min_rnn_layer(config, cell):
  # PROTOCOLS.md, "The minRNN layer and block": Linear(dim -> dim * expansion * {2|3}) with
  # bias -> scan -> Linear(dim * expansion -> dim), always with the down-projection;
  # PyTorch's default initialisation; the official minLSTM's forget-gate bias offset 3 and
  # the paper's normalised gates.
  assert config.model.expansion is not None and config.model.expansion >= 1
  assert config.model.init == "torch"
  if cell == "minlstm":
    assert config.model.cell_kwargs.forget_bias == 3.0
    assert config.model.cell_kwargs.get("normalize", True) is True


@pytest.mark.parametrize("cell", MIN_RNNS)
def test_formal_languages_config_is_the_papers_protocol(cell):
  config = load_config(f"configs/formal_languages.py:{cell}")
  _check_min_rnn_layer(config, cell)
  # PROTOCOLS.md, "Formal languages / Chomsky hierarchy" (paper C.1/C.3, following xLSTM):
  # 2 blocks of Conv4 -> minRNN; 500k steps, batch 256, AdamW lr 3e-4, wd 0.01; train lengths
  # 1-40, test 40-256.
  assert config.model.num_layers == 2
  assert config.model.conv_kernel_size == 4 and config.model.mlp_expansion == 0
  assert config.train.num_steps == 500_000 and config.data.batch_size == 256
  assert config.train.optimizer == "adamw"
  assert config.train.learning_rate == 3e-4 and config.train.weight_decay == 0.01
  assert (config.data.min_len, config.data.max_len) == (1, 40)
  assert (config.data.eval_min_len, config.data.eval_max_len) == (40, 256)
  # "The minRNN layer and block", weight decay [official main.py]: not on the recurrence's
  # projection.
  assert config.train.weight_decay_on == "all_but_recurrence"


def test_formal_languages_experiment_averages_three_seeds():
  # PROTOCOLS.md, "Formal languages": mean of 3 seeds; scaled accuracy beside raw accuracy.
  script = _experiment("experiments/formal_languages/run.py")
  assert script.parse_args([]).seeds.split(",") == ["0", "1", "2"]


@pytest.mark.parametrize("cell", MIN_RNNS)
@pytest.mark.parametrize("task", TASKS)
def test_d4rl_config_is_the_papers_protocol(task, cell):
  config = load_config(f"configs/d4rl.py:{task},{cell}")
  _check_min_rnn_layer(config, cell)
  # PROTOCOLS.md, "D4RL": width 256 for Hopper-M and Hopper-M-R, 128 otherwise; lr 1e-4 for
  # Hopper-M, Hopper-M-R and Walker-M, 1e-3 for the other six; AdamW wd 1e-4, 10k linear
  # warm-up, 100k steps, batch 64; 3 layers of minRNN -> MLP, dropout 0.1, K = 20.
  assert config.model.features == (256 if task in ("hopper-medium", "hopper-medium-replay")
                                    else 128)
  assert config.train.learning_rate == (
      1e-4 if task in ("hopper-medium", "hopper-medium-replay", "walker2d-medium") else 1e-3)
  assert config.train.optimizer == "adamw" and config.train.weight_decay == 1e-4
  assert config.train.warmup_steps == 10_000 and config.train.num_steps == 100_000
  assert config.data.batch_size == 64
  assert config.model.num_layers == 3
  assert config.model.conv_kernel_size == 0 and config.model.mlp_expansion > 0
  assert config.model.dropout == 0.1 and config.data.context == 20
  # Evaluation: the left-padded window of the last K steps, read again at every environment
  # step (not a carried state); 100 episodes (DT / Decision Mamba).
  assert config.data.rollouts.mode == "window"
  assert config.data.rollouts.num_episodes == 100


def test_d4rl_table_averages_five_seeds():
  # PROTOCOLS.md, "D4RL": mean over 5 seeds. (The D4RL reference returns are checked against
  # their literals in tests/test_d4rl.py.)
  script = _experiment("experiments/d4rl/table.py")
  assert len(script.parse_args(["--workdir", "w"]).seeds) == 5
