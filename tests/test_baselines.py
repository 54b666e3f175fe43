"""Baselines: Flax's GRU/LSTM cells with minrnn's scan, the Mamba mixer and the causal
Transformer, each behind the temporal-layer interface (its contract: test_temporal_layers.py);
here, what is particular to each and that the configs build them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn.cells import GRU, LSTM
from minrnn.layers import CausalSelfAttention, Mamba
from minrnn.models import LanguageModel, build_language_model
from minrnn.training.config import load_config

B, T, D = 2, 7, 8


def _steps(cell, carry, x):
  ys = []
  for t in range(x.shape[1]):
    carry, y = cell(carry, x[:, t])
    ys.append(y)
  return carry, jnp.stack(ys, 1)


@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_flax_cells_scan_like_their_own_steps_with_padding(cls):
  cell = cls(3, D, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (B, T, 3))
  carry, y = cell.scan(x)
  step_carry, step_y = _steps(cell, cell.initialize_carry((B, 3)), x)
  np.testing.assert_allclose(y, step_y, rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               carry, step_carry)
  _, padded = cell.scan(x, seq_lengths=jnp.array([T, 3]))
  np.testing.assert_array_equal(padded[1, 3:], 0.0)
  with pytest.raises(ValueError, match="only runs sequentially"):
    cell.scan(x, implementation="associative")


def test_mamba_state_sizes_and_refused_scan_paths():
  mamba = Mamba(D, state_size=4, rngs=nnx.Rngs(0))
  y, state = mamba(jax.random.normal(jax.random.key(1), (B, T, D)))
  assert y.shape == (B, T, D) and state.ssm.shape == (B, 2 * D, 4)
  assert state.conv.shape == (B, 3, 2 * D) and state.ssm.dtype == jnp.float32
  for path in ("log", "pallas_fused"):
    with pytest.raises(ValueError, match="does not scan given coefficients"):
      Mamba(D, implementation=path, rngs=nnx.Rngs(0))


def test_attention_needs_even_heads_and_keeps_a_bounded_cache():
  with pytest.raises(ValueError, match="even width"):
    CausalSelfAttention(12, 4, rngs=nnx.Rngs(0))
  attention = CausalSelfAttention(D, 2, cache_size=4, rngs=nnx.Rngs(0))
  _, cache = attention(jax.random.normal(jax.random.key(1), (B, 9, D)))
  assert cache.keys.shape == (B, 4, 2, D // 2)
  np.testing.assert_array_equal(cache.length, [9, 9])


@pytest.mark.parametrize("variant", ["mamba,cpu", "transformer,cpu", "gru,cpu", "lstm,cpu"])
def test_baseline_configs_build_their_models(variant):
  config = load_config(f"configs/shakespeare.py:{variant}")
  config.model.features, config.model.num_layers = 16, 1
  model = build_language_model(config.model, 65, seed=0)
  assert isinstance(model, LanguageModel)
  logits, _ = nnx.jit(lambda m, t: m(t))(model, jnp.zeros((1, 5), jnp.int32))
  assert logits.shape == (1, 5, 65) and bool(jnp.all(jnp.isfinite(logits)))
