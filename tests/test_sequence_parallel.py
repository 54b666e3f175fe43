"""The sequence-parallel linear scan against the single-device scan, on 8 CPU devices.

The multi-device checks need `--xla_force_host_platform_device_count=8` before JAX starts, so
they run in one subprocess (this file run as a script) that prints its measurements as JSON;
the tests below assert on them. The pytest process itself keeps its single device.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from minrnn.ops import SequenceParallel, linear_scan

_REPO = pathlib.Path(__file__).resolve().parents[1]
_NUM_DEVICES = 8
_SUBPROCESS_TIMEOUT_S = 240
_TOL = 2e-5
# (chunks, reverse, batch mesh axis, path scanning each chunk); each case costs a compilation.
_SCAN_CASES = [(2, False, None, "associative"), (4, True, None, "associative"),
               (8, True, None, "associative"), (4, False, "data", "associative"),
               (8, False, None, "sequential"), (4, True, None, "log"), (2, True, None, "pallas")]
_CELL_CASES = [("MinGRU", True), ("MinLSTM", False)]


def _run_worker() -> dict:
  """This file as a script on 8 CPU devices (through the multi-process launcher, with one
  process); returns the JSON it prints last."""
  spec = importlib.util.spec_from_file_location(
      "launch_multiprocess", _REPO / "scripts" / "launch_multiprocess.py")
  launcher = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(launcher)
  env = dict(os.environ)
  # The subprocess shares the tests' persistent compilation cache.
  env["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir or ""
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  [(code, output)] = launcher.launch(
      [sys.executable, __file__], num_processes=1, cpu_devices_per_process=_NUM_DEVICES,
      timeout=_SUBPROCESS_TIMEOUT_S, env=env)
  assert code == 0, f"the 8-device worker exited with {code}:\n{output[-6000:]}"
  return json.loads(output.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# The checks that run on 8 devices (in the subprocess).


def _max_diff(x, y) -> float:
  return max(float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
             for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y)))


def _scan_checks(mesh_for) -> dict[str, float]:
  """Values and gradients (w.r.t. a, b, h0) of the sharded scan minus the unsharded one."""
  ka, kb, kh, kw = jax.random.split(jax.random.key(0), 4)
  shape = (4, 16, 3)
  # a in (0, 1) and b > 0 as the cells produce them, so that the log-space path applies too.
  a = jax.random.uniform(ka, shape, minval=0.05, maxval=1.0)
  b = jax.random.uniform(kb, shape, minval=0.1, maxval=2.0)
  h0 = jax.random.uniform(kh, shape[::2], minval=0.1, maxval=1.0)
  w = jax.random.normal(kw, shape)

  def loss(scan):
    def f(a, b, h0):
      h, h_last = scan(a, b, h0)
      return jnp.sum(h * w) + jnp.sum(jnp.sin(h_last)), (h, h_last)
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))

  references = {
      reverse: loss(functools.partial(linear_scan, reverse=reverse, implementation="associative"))
      for reverse in (False, True)}
  results = {}
  for chunks, reverse, batch_axis, inner in _SCAN_CASES:
    mesh = mesh_for(chunks, batch_axis)
    reference = references[reverse]
    spec = SequenceParallel(mesh, "sequence", batch_axis=batch_axis, inner=inner)
    sharded = loss(lambda a, b, h0: linear_scan(a, b, h0, reverse=reverse, implementation=spec))
    (_, values), grads = sharded(a, b, h0)
    (_, ref_values), ref_grads = reference(a, b, h0)
    name = f"chunks={chunks},reverse={reverse},batch_axis={batch_axis},inner={inner}"
    results[name] = {"values": _max_diff(values, ref_values), "grads": _max_diff(grads, ref_grads),
                     "time_sharded": values[0].sharding.spec[1] == "sequence"}
  return results


def _cell_checks(mesh) -> dict[str, float]:
  """minGRU/minLSTM `scan` through the sequence-parallel path against the plain scan: outputs, final
  carry and parameter gradients, with an initial carry, padding and reverse."""
  from minrnn.cells import MinGRU, MinLSTM

  name = SequenceParallel(mesh, "sequence", inner="associative")
  x = jax.random.normal(jax.random.key(1), (2, 16, 3))
  carry = jax.random.uniform(jax.random.key(2), (2, 5), minval=0.1, maxval=1.0)
  seq_lengths = jnp.array([16, 11])

  @functools.partial(jax.jit, static_argnums=(0, 2, 3))
  @functools.partial(jax.value_and_grad, argnums=1, has_aux=True)
  def loss(graphdef, params, implementation, reverse):
    cell = nnx.merge(graphdef, params)
    h_last, y = cell.scan(x, carry, seq_lengths=seq_lengths, reverse=reverse,
                          implementation=implementation)
    return jnp.sum(y ** 2) + jnp.sum(h_last), (y, h_last)

  results = {}
  for cell_name, reverse in _CELL_CASES:
    cls = {"MinGRU": MinGRU, "MinLSTM": MinLSTM}[cell_name]
    graphdef, params = nnx.split(cls(3, 5, rngs=nnx.Rngs(0)))
    (_, out), grads = loss(graphdef, params, name, reverse)
    (_, ref_out), ref_grads = loss(graphdef, params, "associative", reverse)
    results[f"{cell_name},reverse={reverse}"] = {
        "values": _max_diff(out, ref_out), "grads": _max_diff(grads, ref_grads)}
  return results


def _model_checks(mesh) -> dict[str, float]:
  """A 2-layer minGRU LM on tokens sharded over time: logits and gradients as unsharded."""
  from minrnn.models import build_language_model
  from minrnn.training.config import lm_defaults

  name = SequenceParallel(mesh, "sequence", inner="associative")
  tokens = jax.random.randint(jax.random.key(3), (2, 16), 0, 11)
  section = lm_defaults()
  section.update(features=8, num_layers=2, cell="mingru", mlp_expansion=2)

  def loss_fn(implementation):
    model = build_language_model(section, 11, seed=0, implementation=implementation)
    graphdef, params = nnx.split(model)

    def f(params, tokens):
      logits, _ = nnx.merge(graphdef, params)(tokens)
      return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[..., 0]), logits
    return jax.jit(jax.value_and_grad(f, has_aux=True)), params

  step, params = loss_fn(name)
  sharded_tokens = jax.device_put(tokens, NamedSharding(mesh, P(None, "sequence")))
  (_, logits), grads = step(params, sharded_tokens)
  ref_step, _ = loss_fn("associative")
  (_, ref_logits), ref_grads = ref_step(params, tokens)
  return {"values": _max_diff(logits, ref_logits), "grads": _max_diff(grads, ref_grads),
          "logits_time_sharded": logits.sharding.spec[1:2] == ("sequence",)}


def _error_checks(mesh) -> dict[str, str]:
  x = jnp.ones((2, 12, 3))
  try:
    linear_scan(x, x, implementation=SequenceParallel(mesh, "sequence"))
    return {"indivisible_time": ""}
  except ValueError as e:
    return {"indivisible_time": str(e)}


def _worker() -> dict:
  from minrnn.training.distributed import make_mesh

  devices = jax.devices()
  assert len(devices) == _NUM_DEVICES, devices

  def mesh_for(chunks, batch_axis):
    if batch_axis is None:
      return make_mesh({"sequence": chunks}, devices[:chunks])
    return make_mesh({batch_axis: _NUM_DEVICES // chunks, "sequence": chunks})

  mesh8 = mesh_for(_NUM_DEVICES, None)
  return {"scan": _scan_checks(mesh_for), "cells": _cell_checks(mesh8),
          "model": _model_checks(mesh8), "errors": _error_checks(mesh8)}


# ---------------------------------------------------------------------------------------------
# The tests (in the pytest process).


@pytest.fixture(scope="module")
def multi_device():
  return _run_worker()


@pytest.mark.parametrize("case", _SCAN_CASES, ids=str)
def test_matches_unsharded_scan(multi_device, case):
  """Values and gradients w.r.t. a, b and the initial state, for 2/4/8 chunks, both directions,
  with the batch sharded too, and with each kind of chunk path."""
  chunks, reverse, batch_axis, inner = case
  result = multi_device["scan"][
      f"chunks={chunks},reverse={reverse},batch_axis={batch_axis},inner={inner}"]
  assert result["time_sharded"]
  assert result["values"] < _TOL
  assert result["grads"] < _TOL


@pytest.mark.parametrize("case", _CELL_CASES, ids=str)
def test_cells_accept_the_sequence_parallel_path(multi_device, case):
  """Outputs, final carry and parameter gradients with an initial carry and padding."""
  cell_name, reverse = case
  result = multi_device["cells"][f"{cell_name},reverse={reverse}"]
  assert result["values"] < _TOL
  assert result["grads"] < _TOL


def test_language_model_on_sequence_sharded_tokens(multi_device):
  result = multi_device["model"]
  assert result["logits_time_sharded"]
  assert result["values"] < 1e-4
  assert result["grads"] < 1e-4


def test_indivisible_time_is_a_clear_error(multi_device):
  message = multi_device["errors"]["indivisible_time"]
  assert "12 steps" in message and "divisible by the 8 devices" in message


def test_single_device_mesh_is_the_plain_scan():
  mesh = jax.make_mesh((1,), ("sequence",), axis_types=(jax.sharding.AxisType.Auto,))
  a = jnp.full((1, 4, 2), 0.5)
  b = jnp.arange(8.0).reshape(1, 4, 2)
  h0 = jnp.ones((1, 2))
  h, h_last = linear_scan(a, b, h0,
                          implementation=SequenceParallel(mesh, "sequence", inner="sequential"))
  ref_h, ref_last = linear_scan(a, b, h0, implementation="sequential")
  np.testing.assert_allclose(h, ref_h, rtol=1e-6)
  np.testing.assert_allclose(h_last, ref_last, rtol=1e-6)


def test_bad_arguments_are_clear_errors():
  mesh = jax.make_mesh((1,), ("sequence",), axis_types=(jax.sharding.AxisType.Auto,))
  x = jnp.ones((2, 4, 3))
  with pytest.raises(ValueError, match="'time' is not an axis of the mesh"):
    SequenceParallel(mesh, axis_name="time")
  with pytest.raises(ValueError, match="different mesh axes"):
    SequenceParallel(mesh, "sequence", batch_axis="sequence")
  with pytest.raises(ValueError, match=r"h0 must have shape \(batch, features\)"):
    linear_scan(x, x, jnp.ones((3,)), implementation=SequenceParallel(mesh, "sequence"))
  with pytest.raises(ValueError, match="cannot scan its chunks with itself"):
    SequenceParallel(mesh, "sequence", inner=SequenceParallel(mesh, "sequence"))
  with pytest.raises(ValueError, match="needs a device mesh.*SequenceParallel"):
    linear_scan(x, x, implementation="sequence_parallel")
  with pytest.raises(ValueError, match="computes a cell's gates"):
    linear_scan(x, x, implementation=SequenceParallel(mesh, "sequence", inner="pallas_fused"))


if __name__ == "__main__":
  print(json.dumps(_worker()))
