"""The contract every registered temporal layer keeps (`minrnn.layers.base`), run for each name
in `minrnn.layers.registry`: registering a new cell or layer adds it here, with no test to edit.

For every layer: step mode == parallel mode (outputs and final state); continuation from a
returned state == one longer run; padding (a padded row's outputs and final state are those of
the same row run unpadded to its length, padded outputs are zero); finite gradients; causality.
For layers that wrap a cell: Flax's `nnx.RNN` drives the cell's step path to the same outputs,
`reverse` reads each row's valid part backwards; and for linear recurrent cells every scan path
matches a float64 loop of the cell's own coefficients.

The same contract holds at the settings the configs use: every recurrent cell with the paper's
expansion and down-projection (`to_out`), and every residual block a config variant builds (the
conv on its own residual branch or inside the temporal one, the MLP, SRU++'s attention layers),
at the contract's width. Blocks keep it but for zero padded outputs (their residual stream
carries the inputs through).
"""

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from config_variants import VARIANTS
from minrnn.cells import LinearRecurrentCell
from minrnn.layers import registry
from minrnn.models.build import block_factory
from minrnn.ops import flip_sequences
from minrnn.training.config import load_config

B, T, F = 2, 7, 8
LENGTHS = (T, 4)
# Options the built-in layers need at this width (a new cell needs none); they replace a
# config's own for the blocks. SRU++ keeps the contract under its same-length mask (the
# official evaluation's): under the training mask a segment's queries also see every earlier
# position of the segment beside the memory, which one token at a time, or a continued
# segment, cannot see.
OPTIONS = {"transformer": {"num_heads": 2, "cache_size": 5},
           "srupp": {"proj_features": 4, "memory_length": 3, "same_length": True},
           "mamba": {"state_size": 4}}
TOL = dict(rtol=2e-5, atol=2e-5)

_call = nnx.jit(lambda layer, x, state, lengths: layer(x, state, seq_lengths=lengths))
_step = nnx.jit(lambda layer, state, x: layer.step(state, x))


@dataclasses.dataclass(frozen=True)
class Subject:
  """A temporal layer under the contract: `make(seed)` builds one; `zero_padding`: its padded
  outputs are zero (layers; not blocks)."""

  make: Callable[[int], Any]
  zero_padding: bool = True

  def build(self, seed: int) -> Any:
    """The layer with noise added to every parameter: initialisers that start biases (and
    other parameters) at zero would hide what they add, e.g. at padded positions."""
    layer = self.make(seed)
    params = nnx.state(layer, nnx.Param)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1000), len(leaves))
    noisy = [p + 0.1 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)]
    nnx.update(layer, jax.tree.unflatten(treedef, noisy))
    return layer


def _layer(name, seed=0, expansion=None):
  return registry.build(name, F, expansion=expansion, implementation=None,
                        rngs=nnx.Rngs(seed), **OPTIONS.get(name, {}))


def _config_blocks() -> dict[str, Subject]:
  """Every distinct residual block (by structure) of every config variant, at width F with
  its expansions at 2 (how wide a block is does not change what it computes)."""
  blocks, seen = {}, set()
  for family, variant in VARIANTS:
    model = load_config(f"configs/{family}.py:{variant}").model
    model.update(features=F, dropout=0.0, dtype="float32",
                 mlp_expansion=min(model.mlp_expansion, 2))
    if model.expansion is not None:
      model.expansion = 2
    model.cell_kwargs.update(OPTIONS.get(model.cell, {}))
    # Dropout rates change nothing without `rngs`, as the contract runs.
    model.cell_kwargs.update({k: 0.0 for k in model.cell_kwargs if k.endswith("dropout")})
    factory = block_factory(model)
    for layer in range(model.num_layers):
      graphdef = nnx.graphdef(nnx.eval_shape(lambda: factory(layer, nnx.Rngs(0))))
      if graphdef not in seen:
        seen.add(graphdef)
        build = lambda seed, factory=factory, layer=layer: factory(layer, nnx.Rngs(seed))
        blocks[f"block[{family}:{variant}:{layer}]"] = Subject(build, zero_padding=False)
  return blocks


SUBJECTS = {
    **{name: Subject(functools.partial(_layer, name)) for name in registry.names()},
    **{f"{name}[expansion=2]": Subject(functools.partial(_layer, name, expansion=2))
       for name in registry.names() if registry.get(name).cell is not None},
    **_config_blocks(),
}


def _x(seed=1, t=T):
  return jax.random.normal(jax.random.key(seed), (B, t, F))


def _close(a, b, what):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(u, v, err_msg=what, **TOL)


def _steps(layer, state, x):
  ys = []
  for t in range(x.shape[1]):
    state, y = _step(layer, state, x[:, t])
    ys.append(y)
  return state, jnp.stack(ys, 1)


@pytest.fixture(scope="module", params=sorted(SUBJECTS))
def name(request):
  return request.param


def test_step_mode_equals_parallel_mode(name):
  layer, x = SUBJECTS[name].build(0), _x()
  y, state = _call(layer, x, None, None)
  assert y.shape == x.shape
  step_state, step_y = _steps(layer, layer.initialize_state(B), x)
  _close(step_y, y, f"{name}: step outputs")
  _close(step_state, state, f"{name}: step state")


def test_continuation_from_a_returned_state(name):
  """T1 steps, then T2 from the returned state == T1 + T2 at once (length > the attention
  cache, so the window slides)."""
  layer, x = SUBJECTS[name].build(0), _x(2, 2 * T)
  y, state = _call(layer, x, None, None)
  y1, mid = _call(layer, x[:, :T], None, None)
  y2, end = _call(layer, x[:, T:], mid, None)
  _close(jnp.concatenate([y1, y2], 1), y, f"{name}: continued outputs")
  _close(end, state, f"{name}: continued state")
  step_state, step_y = _steps(layer, mid, x[:, T:])
  _close(step_y, y2, f"{name}: steps after a parallel prefix")
  _close(step_state, end, f"{name}: state after the steps")


def test_padded_rows_end_in_their_own_final_state(name):
  layer, x = SUBJECTS[name].build(0), _x(3)
  lengths = jnp.asarray(LENGTHS)
  y, state = _call(layer, x, None, lengths)
  for row, n in enumerate(LENGTHS):
    row_y, row_state = _call(layer, x[row:row + 1, :n], None, None)
    _close(y[row:row + 1, :n], row_y, f"{name}: valid outputs of row {row}")
    _close(jax.tree.map(lambda s: s[row:row + 1], state), row_state,
           f"{name}: final state of row {row} (length {n})")
    if SUBJECTS[name].zero_padding:
      assert not np.any(np.asarray(y[row, n:])), f"{name}: padded outputs must be zero"


def test_gradients_are_finite_and_the_layer_is_causal(name):
  layer, x = SUBJECTS[name].build(0), _x(4)
  graphdef, params = nnx.split(layer, nnx.Param)

  @jax.jit
  def grads(params, x):
    loss = lambda p, x: jnp.sum(nnx.merge(graphdef, p)(x)[0] ** 2)
    return jax.grad(loss, argnums=(0, 1))(params, x)

  for g in jax.tree.leaves(grads(params, x)):
    assert bool(jnp.all(jnp.isfinite(g))), name
  y, _ = _call(layer, x, None, None)
  y_changed, _ = _call(layer, x.at[:, 4].add(1.0), None, None)
  np.testing.assert_array_equal(y[:, :4], y_changed[:, :4])
  assert not np.allclose(y[:, 4:], y_changed[:, 4:]), name


CELLS = [name for name in registry.names() if registry.get(name).cell is not None]


@pytest.fixture(scope="module", params=CELLS)
def cell_name(request):
  return request.param


def test_cells_run_under_flax_rnn_and_reverse_within_rows(cell_name):
  name, cell, x = cell_name, SUBJECTS[cell_name].build(0).cell, _x(5)
  _, y = cell.scan(x)
  np.testing.assert_allclose(nnx.RNN(cell)(x), y, **TOL)
  lengths = jnp.asarray(LENGTHS)
  carry, y_rev = cell.scan(x, seq_lengths=lengths, reverse=True)
  want_carry, want = cell.scan(flip_sequences(x, lengths), seq_lengths=lengths)
  _close(flip_sequences(want, lengths), y_rev, f"{name}: reverse outputs")
  _close(want_carry, carry, f"{name}: reverse final state")


def _float64_loop(a, b, h0):
  h, hs = np.asarray(h0, np.float64), []
  for t in range(a.shape[1]):
    h = a[:, t] * h + b[:, t]
    hs.append(h)
  return np.stack(hs, 1), h


@pytest.mark.parametrize("implementation", ["associative", "sequential", "log", "heinsen"])
def test_linear_cells_match_a_float64_loop_of_their_coefficients(cell_name, implementation):
  name, cell = cell_name, SUBJECTS[cell_name].build(0).cell
  if not isinstance(cell, LinearRecurrentCell):
    pytest.skip(f"{name} is not a linear recurrence")
  x = _x(6)
  a, b = (np.asarray(v, np.float64) for v in cell.coefficients(x))
  if implementation in ("log", "heinsen") and (a.min() <= 0 or b.min() <= 0):
    pytest.skip(f"{name}'s coefficients are not positive: no log-space path")
  h0 = jnp.full((B, cell.hidden_features), 0.5)
  want, want_last = _float64_loop(a, b, h0)
  carry, y = cell.scan(x, h0, implementation=implementation)
  tol = dict(rtol=2e-3, atol=1e-5) if implementation == "heinsen" else TOL
  np.testing.assert_allclose(y, want, **tol)
  np.testing.assert_allclose(carry, want_last, **tol)
