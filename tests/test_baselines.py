"""Baselines: the Mamba mixer (parallel == step == continuation) and the causal Transformer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn import registry
from minrnn.mamba import Mamba
from minrnn.models import LanguageModel, build_model
from minrnn.transformer import TransformerLM
from minrnn.run_config import load_config

B, T, D = 2, 7, 8

# Compiled once per test session: eager Mamba dispatches hundreds of small ops per call.
_scan = nnx.jit(lambda cell, x, carry: cell.scan(x, carry))
_scan_sequential = nnx.jit(lambda cell, x: cell.scan(x, implementation="sequential"))
_step = nnx.jit(lambda cell, carry, x: cell(carry, x))
_logits = nnx.jit(lambda model, tokens: model(tokens)[0])


@pytest.fixture(scope="module")
def mamba():
  return Mamba(D, D, state_size=4, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def x():
  return jax.random.normal(jax.random.key(1), (B, T, D))


def _steps(cell, carry, x):
  ys = []
  for t in range(x.shape[1]):
    carry, y = _step(cell, carry, x[:, t])
    ys.append(y)
  return carry, jnp.stack(ys, 1)


def test_mamba_parallel_matches_step_mode(mamba, x):
  carry, y = _scan(mamba, x, None)
  step_carry, step_y = _steps(mamba, mamba.initialize_carry((B, D)), x)
  assert y.shape == (B, T, D) and carry["ssm"].shape == (B, 2 * D, 4)
  np.testing.assert_allclose(y, step_y, rtol=1e-4, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               carry, step_carry)


def test_mamba_continuation_and_scan_paths_agree(mamba, x):
  _, y = _scan(mamba, x, None)
  carry, y1 = _scan(mamba, x[:, :3], None)
  _, y2 = _scan(mamba, x[:, 3:], carry)
  np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), y, rtol=1e-4, atol=1e-5)
  _, y_seq = _scan_sequential(mamba, x)
  np.testing.assert_allclose(y_seq, y, rtol=1e-4, atol=1e-5)


def test_mamba_is_causal_and_rejects_log_space_scans(mamba, x):
  _, y = _scan(mamba, x, None)
  _, y_changed = _scan(mamba, x.at[:, 4].add(1.0), None)
  np.testing.assert_array_equal(y[:, :4], y_changed[:, :4])
  assert not np.allclose(y[:, 4:], y_changed[:, 4:])
  with pytest.raises(ValueError, match="negative"):
    mamba.scan(x, implementation="log")


def test_transformer_is_causal():
  model = TransformerLM(11, features=16, num_layers=2, num_heads=2, rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(0), (B, T), 0, 11)
  logits = _logits(model, tokens)
  changed = _logits(model, tokens.at[:, 5].set((tokens[:, 5] + 1) % 11))
  assert logits.shape == (B, T, 11) and logits.dtype == jnp.float32
  with pytest.raises(ValueError, match="no state"):
    model(tokens, [])
  np.testing.assert_allclose(logits[:, :5], changed[:, :5], rtol=1e-5, atol=1e-6)
  assert not np.allclose(logits[:, 5:], changed[:, 5:])
  with pytest.raises(ValueError, match="even width"):
    TransformerLM(11, features=12, num_layers=1, num_heads=4, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("path, kind", [("configs/shakespeare/mamba.py", LanguageModel),
                                        ("configs/shakespeare/transformer.py", TransformerLM)])
def test_baseline_configs_build_their_models(path, kind):
  config = load_config(path, "cpu")
  config.model.features, config.model.num_layers = 16, 1
  model = build_model(config.model, 65, seed=0)
  assert isinstance(model, kind)
  logits = _logits(model, jnp.zeros((1, 5), jnp.int32))
  assert logits.shape == (1, 5, 65) and bool(jnp.all(jnp.isfinite(logits)))
  assert "mamba" in registry.cell_names()
