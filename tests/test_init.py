"""`model.init="torch"`: every Linear, conv and embedding a model builds draws PyTorch's
defaults, as the paper's models do. The bounds are PyTorch's documented ones: `nn.Linear`
weight and bias ~ U(-sqrt(k), sqrt(k)), k = 1 / in_features; `nn.Conv1d` the same with
k = groups / (in_channels * kernel_size); `nn.Embedding` ~ N(0, 1)."""

import math

import jax
import numpy as np
import pytest
from flax import nnx

from minrnn.layers import init as param_init
from minrnn.models import build_decision_model, build_language_model
from minrnn.training.config import block_defaults, lm_defaults

F, EXPANSION, MLP, KERNEL, VOCAB = 64, 2, 2, 4, 50
STATE_DIM, ACT_DIM = 11, 3


def _section(defaults, init, cell="mingru", **model):
  section = defaults()
  section.update({"cell": cell, "features": F, "num_layers": 1, "expansion": EXPANSION,
                  "conv_kernel_size": KERNEL, "mlp_expansion": MLP, "mlp_gated": False,
                  "init": init, **model})
  return section


def _params(model) -> dict[str, np.ndarray]:
  state = nnx.state(model, nnx.Param)
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}


def _param(params, *parts):
  names = [name for name in params if all(f"'{p}'" in name for p in parts)]
  assert len(names) == 1, (parts, names)
  return params[names[0]]


def _assert_uniform(w: np.ndarray, fan_in: int, where: str):
  bound = 1.0 / math.sqrt(fan_in)
  assert np.abs(w).max() <= bound, where
  # With n draws, max |w| < 0.9 bound has probability 0.9^n; the sample variance of U(-b, b)
  # has relative standard deviation about 0.9 / sqrt(n): n >= 64 in every case below.
  assert np.abs(w).max() >= 0.9 * bound, where
  assert np.var(w) == pytest.approx(bound**2 / 3, rel=0.35), where


# (path parts, fan-in) of every Linear and conv of a one-block language model.
LM_LAYERS = [
    (("conv", "kernel"), KERNEL),  # Depthwise: in_channels / groups = 1.
    (("conv", "bias"), KERNEL),
    (("cell", "proj", "kernel"), F),
    (("cell", "proj", "bias"), F),
    (("to_out", "kernel"), F * EXPANSION),
    (("to_out", "bias"), F * EXPANSION),
    (("mlp", "up", "kernel"), F),
    (("mlp", "up", "bias"), F),
    (("mlp", "down", "kernel"), F * MLP),
    (("mlp", "down", "bias"), F * MLP),
    (("head", "kernel"), F),
]


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_torch_init_draws_pytorch_defaults_in_every_layer_of_a_language_model(cell):
  model = build_language_model(_section(lm_defaults, "torch", cell, tie_embeddings=False),
                               VOCAB, seed=0)
  params = _params(model)
  for parts, fan_in in LM_LAYERS:
    _assert_uniform(_param(params, *parts), fan_in, parts)
  embedding = _param(params, "embed", "embedding")
  assert np.std(embedding) == pytest.approx(1.0, rel=0.05)  # nn.Embedding: N(0, 1).
  # Norm scales stay ones, as PyTorch's.
  np.testing.assert_array_equal(_param(params, "temporal_norm", "scale"), 1.0)


def test_torch_init_draws_pytorch_defaults_in_the_decision_model():
  model = build_decision_model(_section(block_defaults, "torch", conv_kernel_size=0),
                               state_dim=STATE_DIM, act_dim=ACT_DIM, max_timestep=100, seed=0)
  params = _params(model)
  for parts, fan_in in [(("embed_state", "kernel"), STATE_DIM),
                        (("embed_action", "kernel"), ACT_DIM),
                        (("embed_return", "kernel"), 1),
                        (("embed_return", "bias"), 1),
                        (("predict_action", "kernel"), F),
                        (("cell", "proj", "kernel"), F),
                        (("mlp", "down", "kernel"), F * MLP)]:
    _assert_uniform(_param(params, *parts), fan_in, parts)
  assert np.std(_param(params, "embed_timestep", "embedding")) == pytest.approx(1.0, rel=0.05)


def test_flax_init_keeps_flax_defaults():
  model = build_language_model(_section(lm_defaults, "flax", tie_embeddings=False), VOCAB,
                               seed=0)
  params = _params(model)
  # Flax: zero biases, LeCun-normal kernels (std 1 / sqrt(fan_in), truncated at 2 std),
  # GPT-2's N(0, 0.02) embedding.
  for parts in (("conv", "bias"), ("cell", "proj", "bias"), ("to_out", "bias")):
    np.testing.assert_array_equal(_param(params, *parts), 0.0)
  kernel = _param(params, "cell", "proj", "kernel")
  assert np.abs(kernel).max() > 1.0 / math.sqrt(F)
  assert np.std(_param(params, "embed", "embedding")) == pytest.approx(0.02, rel=0.05)


def test_unknown_scheme_and_layers_with_their_own_init_are_clear_errors():
  with pytest.raises(ValueError, match=r"Unknown parameter init 'pytorch'.*'flax', 'torch'"):
    param_init.get("pytorch")
  section = _section(lm_defaults, "torch", "transformer", expansion=None,
                     cell_kwargs={"num_heads": 2})
  with pytest.raises(ValueError, match="'transformer' draws its own parameters"):
    build_language_model(section, VOCAB, seed=0)
