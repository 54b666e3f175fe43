"""Data, model and sequence parallel training and multi-process runs on CPU devices.

Multi-device checks need `--xla_force_host_platform_device_count` set before JAX starts, so
they run in subprocesses (this file run as a script) that print JSON; the tests assert on it:

- one process with 8 devices trains a tiny minGRU LM a few steps on meshes `data=1` (the
  reference), `data=8`, `data=4 x model=2` and `data=2 x sequence=4` (sequence-parallel scan),
  and saves an Orbax checkpoint of the sharded `data=4 x model=2` run;
- the same process runs the training loop itself (`minrnn.train.train`, a tiny selective-copy
  run with dropout and 2 accumulated micro-batches a step) on meshes `data=8` and
  `data=2 x sequence=4`, stopping halfway, and a
  long-context run (recurrent state carried between batches) on `data=2 x sequence=4`;
- two processes with 2 devices each, joined by `jax.distributed` on 127.0.0.1, train the same
  steps on a `data=4` mesh, then run the training loop in one shared workdir.

The pytest process (one device) restores the 8-device checkpoint, runs the training loop as the
reference and resumes the stopped 8-device run to its end.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from minrnn import train as train_lib
from minrnn.models import LanguageModel, build_language_model
from minrnn.ops import SequenceParallel
from minrnn.training import distributed, loop
from minrnn.training.config import lm_defaults, load_config
from minrnn.training.metrics import METRICS_FILE, read_metrics, series

_REPO = pathlib.Path(__file__).resolve().parents[1]
_SUBPROCESS_TIMEOUT_S = 240
_VOCAB, _BATCH, _TIME, _STEPS = 11, 8, 16, 3
_MESHES = {
    "data=8": {"data": 8},
    "data=4,model=2": {"data": 4, "model": 2},
    "data=2,sequence=4": {"data": 2, "sequence": 4},
}
_CHECKPOINTED_MESH = "data=4,model=2"
# The training loop's runs: `_LOOP_STEPS` steps, the multi-device ones stopped at `_LOOP_STOP`.
_LOOP_STEPS, _LOOP_STOP = 4, 2
_LOOP_MESHES = {"data=8": {"data": 8}, "data=2,sequence=4": {"data": 2, "sequence": 4}}
_RESUMED_MESH = "data=8"
_SEGMENT_MESH = {"data": 2, "sequence": 4}


def _load(path: pathlib.Path):
  """A script (outside the package) as a module."""
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _launcher():
  return _load(_REPO / "scripts" / "launch_multiprocess.py")


def _run_self(*args: str, num_processes: int, cpu_devices_per_process: int) -> list[dict]:
  """This file as a script, in `num_processes` processes; each prints one JSON line last."""
  env = dict(os.environ)
  env["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir or ""
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  results = _launcher().launch(
      [sys.executable, __file__, *args], num_processes=num_processes,
      cpu_devices_per_process=cpu_devices_per_process, timeout=_SUBPROCESS_TIMEOUT_S, env=env)
  for i, (code, output) in enumerate(results):
    assert code == 0, f"process {i} of {args} exited with {code}:\n{output[-6000:]}"
  return [json.loads(output.strip().splitlines()[-1]) for _, output in results]


# ---------------------------------------------------------------------------------------------
# Training on a mesh: what the subprocesses run.


def _model(implementation: SequenceParallel | None = None) -> LanguageModel:
  section = lm_defaults()
  section.update(features=8, num_layers=1, cell="mingru", mlp_expansion=2, conv_kernel_size=2)
  return build_language_model(section, _VOCAB, seed=0, implementation=implementation)


def _optimizer() -> optax.GradientTransformation:
  # Clipping and a weight-decay mask, as the training runs use: state that is partly
  # parameter-shaped and partly not.
  return optax.chain(
      optax.clip_by_global_norm(1.0),
      optax.adamw(3e-2, weight_decay=0.1, mask=lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)))


def _batch(step: int) -> dict[str, np.ndarray]:
  """The global batch of `step`, the same in every process."""
  tokens = np.random.default_rng(step).integers(0, _VOCAB, (_BATCH, _TIME + 1), dtype=np.int32)
  return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}


def _train(mesh, sequence_axis: str | None = None) -> dict:
  """`_STEPS` training steps over `mesh`. Returns the losses, the first step's gradients, the
  final parameters (host arrays) and the shardings they had."""
  implementation = None
  if sequence_axis is not None:
    implementation = SequenceParallel(mesh, sequence_axis, batch_axis="data",
                                      inner="associative")
  graphdef, params = nnx.split(_model(implementation), nnx.Param)
  tx = _optimizer()
  shardings = distributed.train_shardings(mesh, params, tx, sequence_axis=sequence_axis)
  params = distributed.put(params, shardings.params)
  opt_state = distributed.init_opt_state(tx, params, shardings)

  def train_step(params, opt_state, batch, key):
    del key  # The tiny model has no dropout.

    def loss_fn(params):
      logits, _ = nnx.merge(graphdef, params)(batch["inputs"])
      return optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {"loss": loss, "grads": grads}

  step_fn = distributed.jit_train_step(train_step, shardings)
  losses, first_grads = [], None
  for step in range(_STEPS):
    batch = distributed.shard_batch(_batch(step), mesh, sequence_axis=sequence_axis)
    params, opt_state, metrics = step_fn(params, opt_state, batch, jax.random.key(step))
    losses.append(float(metrics["loss"]))
    if first_grads is None:
      first_grads = metrics["grads"]
  return {"losses": losses, "grads": first_grads, "params": params, "opt_state": opt_state}


def _loop_config(mesh: dict | None = None, stop_at_step: int | None = None):
  """A tiny selective-copying run of `minrnn.train` (dropout on: its masks must not depend on
  the layout); `mesh` None leaves the configs' default, every device on `data`."""
  config = load_config("configs/selective_copy.py:mingru,cpu")
  config.data.batch_size = 8
  config.data.seq_len = 14  # With the 2 tokens to copy, 16 positions: 4 chunks of 4.
  config.data.num_tokens = 2
  config.data.eval_batches = 1
  config.model.features = 8
  config.model.num_layers = 1
  config.model.mlp_expansion = 2
  config.model.dropout = 0.1
  config.train.grad_accum_steps = 2  # Micro-batches split the global batch on every mesh.
  config.train.num_steps = _LOOP_STEPS
  config.train.stop_at_step = stop_at_step
  config.train.warmup_steps = 1
  config.train.log_every = 1
  config.train.eval_every = 2
  config.train.checkpoint_every = 100
  config.train.progress_bar = False
  config.train.tensorboard = False
  if mesh is not None:
    config.mesh.update(mesh)
  return config


def _segment_config(mesh: dict | None = None):
  """A tiny long-context run: minGRU over Tiny Shakespeare's segment streams, its state carried
  from one batch to the next (on a `sequence` axis, into the sequence-parallel scan)."""
  config = load_config("configs/enwik8.py:mingru,cpu")
  config.data.name = "shakespeare"
  config.data.segments = True
  config.data.download = False
  config.data.batch_size = config.data.eval_batch_size = 8
  config.data.seq_len = 16
  config.data.eval_batches = 1
  config.model.features = 16
  config.model.num_layers = 1
  config.model.dropout = 0.1
  config.train.num_steps = 3
  config.train.log_every = 1
  config.train.eval_every = 3
  config.train.checkpoint_every = 100
  config.train.progress_bar = False
  config.train.tensorboard = False
  if mesh is not None:
    config.mesh.update(mesh)
  return config


def _loop_losses(workdir: pathlib.Path) -> dict[str, list[float]]:
  records = read_metrics(workdir / METRICS_FILE)
  return {split: series(records, split, "loss")[1] for split in ("train", "eval")}


def _leaves(tree) -> list[np.ndarray]:
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _max_diff(x, y) -> float:
  return max(float(np.max(np.abs(u - v))) for u, v in zip(_leaves(x), _leaves(y)))


def _specs(tree) -> list[str]:
  """The distinct partition specs of `tree`'s arrays, as JSON lists (`[null, "model"]`)."""
  return sorted({json.dumps(list(x.sharding.spec)) for x in jax.tree.leaves(tree)})


def _single_process_worker(checkpoint_dir: str) -> dict:
  assert jax.device_count() == 8, jax.devices()
  reference = _train(distributed.make_mesh({"data": 1}, jax.devices()[:1]))
  result = {"reference_losses": reference["losses"], "meshes": {}}
  for name, axes in _MESHES.items():
    run = _train(distributed.make_mesh(axes),
                 sequence_axis="sequence" if "sequence" in axes else None)
    result["meshes"][name] = {
        "losses": run["losses"],
        "grads": _max_diff(run["grads"], reference["grads"]),
        "params": _max_diff(run["params"], reference["params"]),
        "param_specs": _specs(run["params"]),
        "opt_state_specs": _specs(run["opt_state"]),
    }
    if name == _CHECKPOINTED_MESH:
      tree = {"params": run["params"], "opt_state": run["opt_state"]}
      with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(pathlib.Path(checkpoint_dir) / "state", tree)
      np.savez(pathlib.Path(checkpoint_dir) / "expected.npz", *_leaves(tree))
  try:
    distributed.shard_batch({"lengths": np.zeros((8,), np.int32),
                             "inputs": np.zeros((6, 16), np.int32)},
                            distributed.make_mesh({"data": 4, "sequence": 2}),
                            sequence_axis="sequence")
    result["indivisible_batch_error"] = ""
  except ValueError as e:
    result["indivisible_batch_error"] = str(e)
  # The two-process run is compared with this, a plain run of the same steps.
  result["reference_params"] = [x.tolist() for x in _leaves(reference["params"])]
  for name, axes in _LOOP_MESHES.items():
    train_lib.train(_loop_config(axes, stop_at_step=_LOOP_STOP),
                    pathlib.Path(checkpoint_dir) / f"loop_{name}")
  train_lib.train(_segment_config(_SEGMENT_MESH), pathlib.Path(checkpoint_dir) / "segments")
  return result


def _two_process_worker(workdir: str) -> dict:
  assert distributed.initialize(), "expected the launcher's JAX_COORDINATOR_ADDRESS"
  mesh = distributed.make_mesh({"data": -1})
  run = _train(mesh)
  # Parameters are replicated over `data`: each process reads its own copy.
  params = [np.asarray(x.addressable_data(0)).tolist() for x in jax.tree.leaves(run["params"])]
  loop = train_lib.train(_loop_config(), workdir)
  return {"process_index": jax.process_index(), "process_count": jax.process_count(),
          "device_count": jax.device_count(), "losses": run["losses"], "params": params,
          "loop_eval_loss": loop["eval"]["loss"]}


# ---------------------------------------------------------------------------------------------
# The tests (in the pytest process, one device).


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("sharded_checkpoint")


@pytest.fixture(scope="module")
def runs(checkpoint_dir):
  """Both subprocess runs, side by side: each compiles mostly on one core."""
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    single = pool.submit(_run_self, "single_process", str(checkpoint_dir), num_processes=1,
                         cpu_devices_per_process=8)
    double = pool.submit(_run_self, "two_process", str(checkpoint_dir / "loop_two_process"),
                         num_processes=2, cpu_devices_per_process=2)
    return {"single_process": single.result()[0], "two_process": double.result()}


@pytest.fixture(scope="module")
def single_process(runs):
  return runs["single_process"]


@pytest.mark.parametrize("mesh", list(_MESHES))
def test_loss_and_grads_match_one_device(single_process, mesh):
  run = single_process["meshes"][mesh]
  np.testing.assert_allclose(run["losses"], single_process["reference_losses"], rtol=1e-5)
  assert run["grads"] < 1e-5
  assert run["params"] < 1e-5


def test_sharding_rules_split_over_model_axis_only_where_they_divide(single_process):
  assert single_process["meshes"]["data=8"]["param_specs"] == ["[]"]
  model_specs = single_process["meshes"]["data=4,model=2"]["param_specs"]
  # Kernels split by output column, the embedding and biases by their first axis, norm scales
  # (and the 8-wide conv, which the default rules leave alone) replicated.
  assert model_specs == ["[\"model\"]", "[]", "[null, \"model\"]"]
  # Adam's moments follow the parameters; the step counts stay replicated.
  assert single_process["meshes"]["data=4,model=2"]["opt_state_specs"] == model_specs


def test_batch_that_does_not_split_is_a_clear_error(single_process):
  message = single_process["indivisible_batch_error"]
  assert "(6, 16) cannot be split 4 ways along axis 0" in message
  assert "multiple of 4" in message


def test_checkpoint_from_8_devices_restores_on_1(single_process, checkpoint_dir):
  assert jax.device_count() == 1
  graphdef, params = nnx.split(_model(), nnx.Param)
  tx = _optimizer()
  mesh = distributed.make_mesh({"data": -1})
  shardings = distributed.train_shardings(mesh, params, tx)
  target = {"params": distributed.abstract(params, shardings.params),
            "opt_state": distributed.abstract(jax.eval_shape(tx.init, params),
                                              shardings.opt_state)}
  with ocp.StandardCheckpointer() as checkpointer:
    restored = checkpointer.restore(checkpoint_dir / "state", target)
  expected = np.load(checkpoint_dir / "expected.npz")
  leaves = jax.tree.leaves(restored)
  assert len(leaves) == len(expected.files)
  for i, leaf in enumerate(leaves):
    assert leaf.sharding.mesh.devices.size == 1
    np.testing.assert_array_equal(np.asarray(leaf), expected[f"arr_{i}"])
  # The restored parameters run the model on the single device.
  model = nnx.merge(graphdef, restored["params"])
  logits, _ = model(jnp.asarray(_batch(0)["inputs"]))
  assert np.isfinite(np.asarray(logits)).all()


def test_two_processes_match_one(runs, single_process):
  assert [r["process_index"] for r in runs["two_process"]] == [0, 1]
  for run in runs["two_process"]:
    assert run["process_count"] == 2 and run["device_count"] == 4
    np.testing.assert_allclose(run["losses"], single_process["reference_losses"], rtol=1e-5)
    for got, want in zip(run["params"], single_process["reference_params"]):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def one_device_loop(tmp_path_factory):
  """The training loop's losses on this process's one device, the whole run."""
  assert jax.device_count() == 1
  workdir = tmp_path_factory.mktemp("loop_one_device")
  train_lib.train(_loop_config(), workdir)
  return _loop_losses(workdir)


@pytest.mark.parametrize("mesh", list(_LOOP_MESHES))
def test_training_loop_matches_one_device(single_process, checkpoint_dir, one_device_loop, mesh):
  del single_process  # Ran the loop on `mesh`.
  losses = _loop_losses(checkpoint_dir / f"loop_{mesh}")
  assert len(losses["train"]) == _LOOP_STOP and len(losses["eval"]) == 1
  np.testing.assert_allclose(losses["train"], one_device_loop["train"][:_LOOP_STOP], rtol=1e-5)
  np.testing.assert_allclose(losses["eval"], one_device_loop["eval"][:1], rtol=1e-5)


def test_training_loop_stopped_on_8_devices_resumes_on_1(single_process, checkpoint_dir,
                                                         one_device_loop):
  del single_process  # Stopped the run at `_LOOP_STOP`.
  workdir = checkpoint_dir / f"loop_{_RESUMED_MESH}"
  result = train_lib.train(_loop_config(), workdir)
  assert result["completed"] and result["step"] == _LOOP_STEPS
  losses = _loop_losses(workdir)
  np.testing.assert_allclose(losses["train"], one_device_loop["train"], rtol=1e-5)
  np.testing.assert_allclose(losses["eval"], one_device_loop["eval"], rtol=1e-5)


def test_segment_training_on_a_sequence_mesh_matches_one_device(single_process, checkpoint_dir,
                                                               tmp_path):
  del single_process  # Ran the long-context loop on `_SEGMENT_MESH`.
  train_lib.train(_segment_config(), tmp_path)
  want, got = _loop_losses(tmp_path), _loop_losses(checkpoint_dir / "segments")
  assert len(got["train"]) == 3 and len(got["eval"]) == 1
  np.testing.assert_allclose(got["train"], want["train"], rtol=1e-5)
  np.testing.assert_allclose(got["eval"], want["eval"], rtol=1e-5)


def test_training_loop_in_two_processes_matches_one(runs, checkpoint_dir, one_device_loop):
  losses = _loop_losses(checkpoint_dir / "loop_two_process")
  np.testing.assert_allclose(losses["train"], one_device_loop["train"], rtol=1e-5)
  np.testing.assert_allclose(losses["eval"], one_device_loop["eval"], rtol=1e-5)
  for run in runs["two_process"]:
    assert run["loop_eval_loss"] == pytest.approx(one_device_loop["eval"][-1], rel=1e-5)
  final = json.loads((checkpoint_dir / "loop_two_process" / loop.FINAL_EVAL_FILE).read_text())
  assert final["completed"] and final["step"] == _LOOP_STEPS


def test_launcher_stops_the_others_when_one_process_fails():
  # Process 1 would wait for a minute; process 0 fails at once, so the launcher ends both.
  program = ("import os, sys, time\n"
             "assert os.environ['JAX_COORDINATOR_ADDRESS'].startswith('127.0.0.1:')\n"
             "if os.environ['JAX_PROCESS_ID'] == '0': sys.exit(3)\n"
             "time.sleep(60)\n")
  results = _launcher().launch([sys.executable, "-c", program], num_processes=2, timeout=30)
  assert [code for code, _ in results] == [3, -9]


def test_longest_sequence_search_brackets_the_memory_limit(monkeypatch):
  script = _load(_REPO / "experiments" / "scaling" / "longest_sequence.py")
  limit = 45_000  # Lengths above this "run out of memory".

  def probe(num_steps, argv, args):
    if num_steps > limit:
      return {"time": num_steps, "ok": False, "failure": "out of memory"}
    return {"time": num_steps, "ok": True, "step_ms": 1.0, "peak_bytes": num_steps}

  monkeypatch.setattr(script, "_run_probe", probe)
  args = script._parse_args(["--start", "4096", "--granularity", "1024"])
  result = script.search(args, [])
  assert result["search_finished"]
  # 44 * 1024 = 45056 is over the limit; 43 * 1024 is the longest multiple of 1024 under it.
  assert result["longest_time"] == 43 * 1024
  assert result["shortest_failing_time"] == 44 * 1024
  assert [p["time"] for p in result["probes"]][:4] == [4096, 8192, 16384, 32768]


def test_make_mesh_fills_the_rest_and_rejects_bad_sizes():
  mesh = distributed.make_mesh({"data": -1, "model": 1})
  assert dict(mesh.shape) == {"data": jax.device_count(), "model": 1}
  with pytest.raises(ValueError, match="at most one -1"):
    distributed.make_mesh({"data": -1, "model": -1})
  with pytest.raises(ValueError, match="has 2 devices but there are 1"):
    distributed.make_mesh({"data": 2})


def test_make_mesh_reads_a_config_section():
  config_dict = pytest.importorskip("ml_collections.config_dict")
  mesh = distributed.make_mesh(config_dict.ConfigDict({"data": -1, "sequence": 1}))
  assert mesh.axis_names == ("data", "sequence")
  assert mesh.shape["data"] == jax.device_count()


def test_initialize_without_coordinator_is_single_process(monkeypatch):
  monkeypatch.delenv(distributed.COORDINATOR_ENV, raising=False)
  assert distributed.initialize() is False


def test_initialize_names_missing_variables(monkeypatch):
  monkeypatch.setenv(distributed.COORDINATOR_ENV, "127.0.0.1:1")
  monkeypatch.delenv(distributed.NUM_PROCESSES_ENV, raising=False)
  with pytest.raises(ValueError, match="JAX_NUM_PROCESSES is not"):
    distributed.initialize()
  with pytest.raises(ValueError, match=r"process_id must be in \[0, num_processes=2\)"):
    distributed.initialize(num_processes=2, process_id=2)


if __name__ == "__main__":
  if sys.argv[1] == "single_process":
    print(json.dumps(_single_process_worker(sys.argv[2])))
  else:
    print(json.dumps(_two_process_worker(sys.argv[2])))
