"""GPU benchmark of SRU: our fused Pallas kernel against the official `sru` CUDA kernel and cuDNN.

    python -m minrnn.kernels.sru.benchmark [--lengths 512 4096] [--dtypes float32 bfloat16]
                                    [--out experiments/results/sru]

Cases, all batch-major B=64, D=256 by default, forward and forward+backward (the gradient of
`sum(h)` with respect to the input and every parameter):

- `sru layer`: the input projection (one matmul) plus the recurrence. Ours is `SRUCell.scan`'s
  computation with the Pallas kernel (and with the `lax.scan` reference at the shortest length);
  peers are the official `sru.SRU(D, D, num_layers=1)` (its CUDA kernel, compiled at first use)
  and `torch.nn.LSTM(D, D)` (cuDNN), on their native `(time, batch, features)` layout.
- `sru recurrence`: the elementwise recurrence alone on a precomputed projection, ours per
  kernel configuration (the sweep picks the fastest) and the official kernel's.

Matmuls use TF32 in both frameworks (JAX's default for float32 on this GPU; PyTorch is set to
allow it), so the layers compare like for like. Memory floors (bytes that must move once at the
measured copy bandwidth): recurrence forward reads u0, u1, u2, x and writes h (5 arrays of
B·T·D); forward+backward also writes c forward and reads u0..u2, x, c, dh and writes du0..du2,
dx backward (16). The layer adds the projection's input read and u write (4 forward; 4 + 8
backward: x and du read twice for dx and dW, dx written). Peers that cannot be installed or that
crash get a record whose status says why.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import traceback

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # Leave memory for PyTorch.

import jax
import jax.numpy as jnp
import numpy as np

from minrnn.kernels import benchmarking as bm
from minrnn.kernels.sru import KernelConfig, recurrence, reference

SUITE = "sru"
SWEEP = (
    KernelConfig(32, 8), KernelConfig(32, 16), KernelConfig(16, 8),
    KernelConfig(64, 16, prefetch=False),
)
# Arrays of B·T·D moved once (see the module docstring).
FLOOR_ARRAYS = {("sru recurrence", "fwd"): 5, ("sru recurrence", "fwd+bwd"): 16,
                ("sru layer", "fwd"): 9, ("sru layer", "fwd+bwd"): 28}


def sru_recurrence(u, x, weight_c, bias, *, implementation, config):
  """The compiled kernel (`"pallas"`) or the `lax.scan` reference (`"sequential"`) from a zero
  state, one direction, the highway term on; `(h, c_last)`."""
  batch, num_steps, directions, _, hidden = u.shape
  c0 = jnp.zeros((batch, directions, hidden), jnp.float32)
  if implementation == "sequential":
    return reference.sru_recurrence(u, x, weight_c, bias, c0)
  params = jnp.concatenate([weight_c, bias], axis=1).astype(jnp.float32)
  lengths = jnp.full((batch,), num_steps, jnp.int32)
  return recurrence(u, x, params, c0, lengths, 1.0, False, True, False, False, config)


def _jax_layer(batch, num_steps, features, dtype, config, implementation, seed=0):
  """(fwd, fwd+bwd, arg_sets) of the SRU layer: projection + recurrence, as `SRUCell.scan`."""
  keys = jax.random.split(jax.random.key(seed), 4)
  params = {
      "kernel": jax.random.uniform(keys[0], (features, 3 * features), jnp.float32, -0.1, 0.1),
      "weight_c": jax.random.uniform(keys[1], (1, 2, features), jnp.float32, -1, 1),
      "bias": jnp.zeros((1, 2, features), jnp.float32),
  }

  def layer(params, x):
    u = jnp.dot(x, params["kernel"].astype(dtype)).reshape(batch, num_steps, 1, 3, features)
    h, _ = sru_recurrence(u, x.reshape(batch, num_steps, 1, features), params["weight_c"],
                          params["bias"], implementation=implementation, config=config)
    return h

  fwd = jax.jit(layer)
  grad = jax.jit(jax.grad(lambda p, x: jnp.sum(layer(p, x).astype(jnp.float32)),
                          argnums=(0, 1)))
  sets = bm.num_input_sets(batch * num_steps * features * 4 * 5)
  arg_sets = [(params, jax.random.normal(jax.random.key(seed + 1 + i),
                                         (batch, num_steps, features), dtype))
              for i in range(sets)]
  return fwd, grad, arg_sets


def _jax_recurrence(batch, num_steps, features, dtype, config, seed=0):
  """(fwd, fwd+bwd, arg_sets) of the recurrence alone."""

  def run(u, x, weight_c, bias):
    return sru_recurrence(u, x, weight_c, bias, implementation="pallas", config=config)[0]

  fwd = jax.jit(run)
  grad = jax.jit(jax.grad(lambda *a: jnp.sum(run(*a).astype(jnp.float32)),
                          argnums=(0, 1, 2, 3)))
  sets = bm.num_input_sets(batch * num_steps * features * 4 * 5)
  arg_sets = []
  for i in range(sets):
    keys = jax.random.split(jax.random.key(seed + i), 4)
    arg_sets.append((
        jax.random.normal(keys[0], (batch, num_steps, 1, 3, features), dtype),
        jax.random.normal(keys[1], (batch, num_steps, 1, features), dtype),
        jax.random.uniform(keys[2], (1, 2, features), jnp.float32, -1, 1),
        jnp.zeros((1, 2, features), jnp.float32)))
  return fwd, grad, arg_sets


def _install_official_sru():
  """Imports the official `sru` from a patched temporary copy of the installed package.

  Its extensions are compiled from `csrc` at first use, and `Tensor.type()` is gone from
  PyTorch's C++ API; the copy's sources use `scalar_type()` instead. The installed package is
  left untouched.
  """
  import importlib.util
  import shutil
  import tempfile

  if "sru" in sys.modules:
    return sys.modules["sru"]
  spec = importlib.util.find_spec("sru")
  if spec is None:
    raise ImportError("sru is not installed (pip install sru==2.6.0)")
  root = pathlib.Path(tempfile.mkdtemp(prefix="sru_patched_"))
  shutil.copytree(pathlib.Path(spec.origin).parent, root / "sru")
  for path in (root / "sru" / "csrc").glob("*.c*"):
    text = path.read_text()
    path.write_text(text.replace("x.type().scalarType()", "x.scalar_type()")
                    .replace("x.type().is_cuda()", "x.is_cuda()")
                    .replace("U.type()", "U.scalar_type()")
                    .replace("AT_ASSERTM", "TORCH_CHECK"))
  sys.path.insert(0, str(root))
  import sru
  import sru.cuda_functional  # noqa: F401  (compiles the CUDA kernel now, not inside timing)
  return sru


def _torch_cases(batch, num_steps, features, dtype_name):
  """Yields (impl, mode, op, fn, arg_sets) for the PyTorch peers."""
  import torch

  torch.backends.cuda.matmul.allow_tf32 = True
  torch.backends.cudnn.allow_tf32 = True
  dtype = getattr(torch, dtype_name)
  sets = bm.num_input_sets(batch * num_steps * features * 4 * 5)

  def inputs(grad):
    return [(torch.randn(num_steps, batch, features, device="cuda", dtype=dtype,
                         requires_grad=grad),) for _ in range(sets)]

  def modes(module, impl, op):
    def fwd(x):
      with torch.no_grad():
        return module(x)

    def fwd_bwd(x):
      module.zero_grad(set_to_none=True)
      out = module(x)[0]
      out.float().sum().backward()

    yield impl, "fwd", op, fwd, inputs(False)
    yield impl, "fwd+bwd", op, fwd_bwd, inputs(True)

  sru = _install_official_sru()
  layer = sru.SRU(features, features, num_layers=1).cuda().to(dtype)
  yield from modes(layer, "sru 2.6.0 (CUDA)", "sru layer")

  cell = layer.rnn_lst[0]

  def recurrence(u, x):
    return cell.apply_recurrence(u, cell.weight_c, x, torch.zeros(batch, features, device="cuda",
                                                                  dtype=dtype),
                                 cell.scale_x if cell.rescale else None, None, None)

  class Recurrence(torch.nn.Module):
    def forward(self, x):
      return recurrence(self.u, x)

  rec = Recurrence()
  rec.u = torch.randn(num_steps * batch, 3 * features, device="cuda", dtype=dtype,
                      requires_grad=True)
  yield from modes(rec, "sru 2.6.0 (CUDA)", "sru recurrence")

  lstm = torch.nn.LSTM(features, features).cuda().to(dtype)
  yield from modes(lstm, "cuDNN LSTM (torch)", "sru layer")


def run(lengths=(512, 4096), batch=64, features=256, dtypes=("float32",), peers=True,
        sweep=SWEEP, on_progress=None):
  """Runs every case; returns (records, meta). Failures become records, never exceptions.

  `on_progress(records, meta)` is called after each (dtype, length), so a run cut short keeps
  what it measured.
  """
  bandwidth = bm.copy_bandwidth()
  meta = {**bm.environment(("sru",)), "bandwidth_tbs": bandwidth / 1e12}
  records = []

  def record(op, impl, framework, mode, dtype, num_steps, timer, note=""):
    floor = bm.floor_ms(FLOOR_ARRAYS[(op, mode)], batch * num_steps * features,
                        np.dtype(dtype).itemsize if dtype != "bfloat16" else 2, bandwidth)
    rec = bm.Record(SUITE, op, impl, framework, mode, dtype, batch, num_steps, features,
                    floor_ms=floor, note=note)
    try:
      rec.ms = timer()
    except Exception as e:  # A crashing case is a result too.
      rec.status = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
      traceback.print_exc()
    records.append(rec)
    print(f"{op:15s} {impl:28s} {mode:8s} {dtype:9s} T={num_steps:5d} "
          f"{rec.ms if rec.ms is not None else rec.status}", flush=True)
    return rec

  chosen = {}  # The sweep runs on the first dtype; later dtypes reuse its fastest config.
  for dtype_name in dtypes:
    dtype = jnp.dtype(dtype_name)
    for num_steps in lengths:
      best = {}
      for config in (sweep if num_steps not in chosen else (chosen[num_steps],)):
        fwd, grad, arg_sets = _jax_recurrence(batch, num_steps, features, dtype, config)
        name = (f"minrnn pallas bf={config.block_features} tc={config.time_chunk} "
                f"w={config.num_warps}{' prefetch' if config.prefetch else ''}")
        for mode, fn in (("fwd", fwd), ("fwd+bwd", grad)):
          rec = record("sru recurrence", name, "jax", mode, dtype_name, num_steps,
                       lambda: bm.time_jax(fn, arg_sets))
          if rec.ms is not None and (mode not in best or rec.ms < best[mode][0]):
            best[mode] = (rec.ms, config)
      config = chosen.setdefault(num_steps, best.get("fwd+bwd", (None, KernelConfig()))[1])
      impls = [("minrnn pallas", "pallas")]
      if num_steps == min(lengths) and dtype_name == dtypes[0]:
        impls.append(("minrnn lax.scan", "sequential"))
      for impl, implementation in impls:
        fwd, grad, arg_sets = _jax_layer(batch, num_steps, features, dtype, config,
                                         implementation)
        for mode, fn in (("fwd", fwd), ("fwd+bwd", grad)):
          record("sru layer", impl, "jax", mode, dtype_name, num_steps,
                 lambda: bm.time_jax(fn, arg_sets), note=f"kernel config {config}")
      if not peers:
        if on_progress is not None:
          on_progress(records, meta)
        continue
      try:
        cases = list(_torch_cases(batch, num_steps, features, dtype_name))
      except Exception as e:
        traceback.print_exc()
        for impl, op in (("sru 2.6.0 (CUDA)", "sru layer"), ("sru 2.6.0 (CUDA)", "sru recurrence")):
          for mode in ("fwd", "fwd+bwd"):
            records.append(bm.Record(
                SUITE, op, impl, "torch", mode, dtype_name, batch, num_steps, features,
                status=f"unavailable: {type(e).__name__}: {str(e).splitlines()[0][:200]}"))
        continue
      for impl, mode, op, fn, arg_sets in cases:
        record(op, impl, "torch", mode, dtype_name, num_steps,
               lambda: bm.time_torch(fn, arg_sets))
      if on_progress is not None:
        on_progress(records, meta)
  return records, meta


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--lengths", type=int, nargs="+", default=[512, 4096])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--features", type=int, default=256)
  parser.add_argument("--dtypes", nargs="+", default=["float32"])
  parser.add_argument("--no-peers", action="store_true", help="only our implementations")
  parser.add_argument("--no-sweep", action="store_true", help="default kernel config only")
  parser.add_argument("--out", default="experiments/results/sru")
  args = parser.parse_args(argv)
  if jax.default_backend() != "gpu":
    sys.exit("This benchmark needs a GPU (jax.default_backend() is "
             f"{jax.default_backend()!r}).")
  panels = [("sru layer", "fwd+bwd", d, args.batch, args.features) for d in args.dtypes]
  run(args.lengths, args.batch, args.features, args.dtypes, peers=not args.no_peers,
      sweep=(KernelConfig(),) if args.no_sweep else SWEEP,
      on_progress=lambda records, meta: print(
          "wrote", *bm.write_results(records, meta, args.out, panels)))


if __name__ == "__main__":
  main()
