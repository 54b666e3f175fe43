"""minrnn's `SRU` against the official `sru` package (2.6.0, PyTorch), through a recorded fixture.

`fixtures/sru_official.npz` holds, for a grid of options, the official stack's parameters,
inputs, initial state, lengths, outputs, final states and the gradients of
`sum(h * ph) + sum(c * pc)` with respect to inputs, parameters and initial state, computed by the
package in float64 (`scripts/sru_reference_fixture.py` wrote it and says how to regenerate it;
nothing here needs PyTorch). Each case builds minrnn's `SRU` with the same options, loads the
official parameters, and compares everything, once per recurrence implementation.

Official parameter layout -> minrnn's (layer `i`; D directions, H hidden per direction, K = 3 or 4
matrices; the official code views its tensors this way in `SRUCell.reset_parameters` and in its
recurrence):
  `rnn_lst.i.weight` `(fan_in, D*H*K)`, columns ordered (direction, feature, matrix)
      -> `layers[i].kernel` `(fan_in, D*K*H)`, columns ordered (direction, matrix, feature).
  `rnn_lst.i.weight_proj` `(in, n_proj)` -> `layers[i].weight_proj`, unchanged.
  `rnn_lst.i.weight_c` `(2*D*H)`, ordered (gate [forget, reset], direction, feature)
      -> `layers[i].weight_c` `(D, 2, H)`; `rnn_lst.i.bias` likewise -> `layers[i].bias`.
  `rnn_lst.i.layer_norm.weight`, `.bias` -> `layers[i].layer_norm.scale`, `.bias`.
Gradients map the same way (the mapping only re-indexes). Sequences are time-major officially
(`(T, B, .)`) and batch-major here; states are `(L, B, directions * H)` in both; the official
`mask_pad` is `t >= lengths[b]`, minrnn's `seq_lengths` is `lengths`.

Intended differences, and the only things excluded:
- Padded outputs: minrnn's are zero. The official ones are zero too, except with
  `normalize_after`, where the official layer norm runs over the zeroed padded steps and gives
  LayerNorm(0) = the last layer's layer-norm shift `bias`. So padded output positions are checked
  apart (minrnn: zero; official: that shift, or zero), and since the loss's cotangent there
  reaches only that shift officially, its official gradient is larger than minrnn's by the sum
  of `ph` over the padded positions, which is subtracted before comparing. Nothing else about
  padding differs: final states, input gradients at padded steps (zero) and every other
  gradient are compared as they are.
- Learned initial state: neither SRU has one (the initial state is `c0` or zeros), so the
  softplus-versus-`g` parametrisation of minGRU / minLSTM's learned state does not arise.

Tolerance: the reference is exact up to float32 rounding, so a comparison measures minrnn's
float32 error alone: a few ulps of O(1) values through a few dozen operations. Measured (jax
0.10.2, CPU, both implementations): outputs <= 9e-7, states <= 2.4e-7, input and initial-state
gradients <= 1.2e-6, parameter gradients <= 1.2e-5 absolute and <= 5e-7 relative to the array's
largest entry (gradients reach ~60). Hence outputs and states at atol = rtol = 1e-5, gradients
at rtol 1e-5 and atol 1e-5 times the array's largest magnitude (at least 1): over 10x the error
measured (the official package's own float32 run is as far from its float64 one), and below the
effect of the LayerNorm-epsilon mismatch this file was written to catch: Flax's 1e-6 in place of
the official 1e-5 moves these outputs by 5e-5 (pre-norm) to 1.6e-3 (narrow post-norm layers).
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn.cells.sru import SRU

FIXTURE = pathlib.Path(__file__).with_name("fixtures") / "sru_official.npz"
RTOL = ATOL = 1e-5

with np.load(FIXTURE) as _data:
  DATA = {k: _data[k] for k in _data.files}
META = json.loads(str(DATA["meta"]))
CASES = sorted(META["cases"])


@pytest.fixture(autouse=True)
def full_precision_matmuls():
  # GPUs multiply float32 in TF32 by default; the float64 reference needs full precision.
  with jax.default_matmul_precision("highest"):
    yield


def case_arrays(name):
  """The case's arrays, keys without the `<name>/` prefix."""
  prefix = name + "/"
  return {k[len(prefix):]: v for k, v in DATA.items() if k.startswith(prefix)}


def minrnn_param(model, official_name):
  """`(Param, to_minrnn)` for an official parameter name `rnn_lst.<i>.<name>`: where it goes in
  `model` (an `SRU`, or one merged from its gradients) and the re-indexing into that layout."""
  _, i, name = official_name.split(".", 2)
  layer = model.layers[int(i)]
  d, h, k = layer.directions, layer.hidden_features, layer.num_matrices
  if name == "weight":
    return layer.kernel, lambda w: w.reshape(-1, d, h, k).transpose(0, 1, 3, 2).reshape(w.shape)
  if name in ("weight_c", "bias"):
    return getattr(layer, name), lambda v: v.reshape(2, d, h).transpose(1, 0, 2)
  if name == "weight_proj":
    return layer.weight_proj, lambda w: w
  if name == "layer_norm.weight":
    return layer.layer_norm.scale, lambda w: w
  if name == "layer_norm.bias":
    return layer.layer_norm.bias, lambda w: w
  raise KeyError(f"no minrnn counterpart for official parameter {official_name!r}")


def build(name):
  """minrnn's `SRU` with the case's options and the official parameters loaded."""
  case = META["cases"][name]
  model = SRU(case["input_size"], case["hidden_size"], case["num_layers"],
              rngs=nnx.Rngs(0), **case["options"])
  arrays = case_arrays(name)
  official = [k[len("param/"):] for k in arrays if k.startswith("param/")]
  for key in official:
    param, to_minrnn = minrnn_param(model, key)
    assert param[...].shape == to_minrnn(arrays["param/" + key]).shape, key
    param[...] = jnp.asarray(to_minrnn(arrays["param/" + key]))
  # Every minrnn parameter came from the official model: none is left at its own init.
  assert len(jax.tree.leaves(nnx.state(model, nnx.Param))) == len(official)
  for layer, facts in zip(model.layers, case["layers"], strict=True):
    assert layer.num_matrices == facts["num_matrices"]
    assert layer.projection_size == facts["projection_size"]
    np.testing.assert_allclose(layer.scale_x, facts["scale_x"], rtol=1e-6)
  return model


def run(model, arrays, implementation):
  """Outputs `(B, T, out)`, states `(L, B, out)` and the gradients of the fixture's loss:
  `(params State, dx (B, T, in), dc0 (L, B, out))`."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x = jnp.asarray(arrays["x"]).transpose(1, 0, 2)
  ph = jnp.asarray(arrays["ph"]).transpose(1, 0, 2)
  lengths = jnp.asarray(arrays["lengths"]) if "lengths" in arrays else None

  def loss(params, x, c0):
    h, c = nnx.merge(graphdef, params, rest)(x, c0, lengths, implementation=implementation)
    return jnp.sum(h * ph) + jnp.sum(c * arrays["pc"]), (h, c)

  grads, (h, c) = jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))(
      params, x, jnp.asarray(arrays["c0"]))
  return h, c, (nnx.merge(graphdef, grads[0], rest), grads[1], grads[2])


def assert_grad_close(actual, expected, what):
  atol = ATOL * max(1.0, float(np.max(np.abs(expected))))
  np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol, err_msg=what)


@pytest.mark.parametrize("implementation", ["sequential", "pallas"])
@pytest.mark.parametrize("name", CASES)
def test_matches_official_sru(name, implementation):
  arrays = case_arrays(name)
  options = META["cases"][name]["options"]
  model = build(name)
  h, c, (grad_model, dx, dc0) = run(model, arrays, implementation)
  h_official = arrays["h"].transpose(1, 0, 2)
  batch, steps, _ = h_official.shape
  lengths = arrays.get("lengths", np.full(batch, steps))
  padded = np.arange(steps)[None, :] >= lengths[:, None]  # (B, T)

  np.testing.assert_allclose(c, arrays["c"], rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(h[~padded], h_official[~padded], rtol=RTOL, atol=ATOL)
  # Padded outputs: zero here; officially LayerNorm(0), the last layer norm's shift, when it
  # runs after the layer, else zero.
  assert not np.any(np.asarray(h)[padded])
  post_norm = options.get("normalize_after", False)
  last = len(model.layers) - 1
  shift = arrays[f"param/rnn_lst.{last}.layer_norm.bias"] if post_norm else 0.0
  np.testing.assert_array_equal(h_official[padded], np.broadcast_to(
      shift, h_official[padded].shape))

  assert_grad_close(dx, arrays["grad/x"].transpose(1, 0, 2), "grad x")
  assert_grad_close(dc0, arrays["grad/c0"], "grad c0")
  for key in (k for k in arrays if k.startswith("param/")):
    official = key[len("param/"):]
    expected = arrays["grad/" + official]
    if post_norm and official == f"rnn_lst.{last}.layer_norm.bias":
      # The official cotangent at padded outputs, which minrnn's constant zeros do not take.
      expected = expected - arrays["ph"].transpose(1, 0, 2)[padded].sum(0)
    param, to_minrnn = minrnn_param(grad_model, official)
    assert_grad_close(param[...], to_minrnn(expected), "grad " + official)
