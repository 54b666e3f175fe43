"""The `scan` suite (the linear recurrence alone, through the paths of `minrnn.ops.linear_scan`)
and the `tune` suite (the Pallas scan kernels alone over their tuning grids).

Cases are the data of `minrnn.kernels.linear_scan.benchmark`; the paths are the ops table's.
"""

from __future__ import annotations

from typing import Iterator

from benchmarks import layers
from benchmarks.common import Case, failure, interpret, names, num_sets, platform, shapes
from benchmarks.common import with_mode
from minrnn.kernels import benchmarking
from minrnn.kernels.linear_scan import benchmark as data


def default_implementations(platform_name: str) -> list[str]:
  """Every path of the ops table that scans given coefficients and compiles on the platform
  (the sequence-parallel path needs a device mesh, the fused one a cell's gates)."""
  from minrnn import ops

  return [entry.name for entry in ops.IMPLEMENTATIONS.values()
          if entry.inputs is not ops.Inputs.GATES and entry.name != "sequence_parallel"
          and entry.supports(platform_name)]


def _scan_fn(name: str):
  from minrnn import ops

  return lambda a, b: ops.linear_scan(a, b, implementation=name)[0]


def _scan_case(args, name: str, shape, dtype: str, mode: str, positive: bool) -> Case:
  record = benchmarking.Record("scan", "scan", name, "jax", mode, dtype, *shape)
  if name == "sequential" and shape[1] > args.sequential_max_t:
    record.status = f"skipped: lax.scan beyond T={args.sequential_max_t}"
    return Case(record)

  def build():
    import jax

    fn = with_mode(_scan_fn(name), mode, 2)
    item = jax.numpy.dtype(dtype).itemsize
    sets = num_sets(args, 3 * item * shape[0] * shape[1] * shape[2])
    arg_sets = lambda: [data.make_inputs(shape, dtype, s, positive=positive)
                        for s in range(sets)]
    return fn, [jax.ShapeDtypeStruct(shape, dtype)] * 3, arg_sets

  return Case(record, build)


def scan_cases(args) -> Iterator[Case]:
  """Every selected path (`--implementations`, else the platform's) at every shape, dtype and
  mode."""
  from minrnn import ops

  for name in names(args.implementations) or default_implementations(platform(args)):
    try:
      entry = ops.resolve(name)
      if entry.inputs is ops.Inputs.GATES:
        raise ValueError(f"{name!r} scans a cell's gates; time it in the layers suite")
    except ValueError as exc:
      yield Case(benchmarking.Record("scan", "scan", name, "jax", "-", "-", 0, 0, 0,
                                     status=failure(exc)))
      continue
    for shape in shapes(args):
      for dtype in names(args.dtypes):
        if entry.name in data.FLOAT32_ONLY and dtype != "float32":
          continue
        for mode in names(args.modes):
          yield _scan_case(args, name, shape, dtype, mode, entry.inputs is ops.Inputs.LOGS)


def _tune_shapes(args) -> list[tuple[int, int, int, str]]:
  """(batch, time, features, dtype) of the sweeps; a dry run's main shape at its longest T."""
  if args.dry_run:
    time = max(shape[1] for shape in shapes(args))
    return [(args.batch, time, args.features, dtype) for dtype in names(args.dtypes)]
  return list(data.TUNE_SHAPES)


def _tune_case(args, op, config, kernel, shape, dtype, fn, inputs) -> Case:
  """One kernel alone at one config; `inputs(shape, dtype, seed)` makes its arguments."""
  record = benchmarking.Record("tune", op, data.config_name(config), "jax",
                               "fwd" if kernel == "forward" else "bwd", dtype, *shape)

  def build():
    import math

    import jax

    input_shapes = jax.eval_shape(lambda: inputs(shape, dtype, 0))
    nbytes = sum(math.prod(s.shape) * s.dtype.itemsize for s in input_shapes)
    sets = num_sets(args, nbytes)
    return jax.jit(fn), list(input_shapes), lambda: [inputs(shape, dtype, s)
                                                      for s in range(sets)]

  return Case(record, build)


def _tune_grid(args, backend: str, kernel: str, dtype: str, time: int, features: int):
  grid = [c for c in data.configs(backend, kernel, dtype) if data.divides(c, time, features)]
  return grid[:2] if args.dry_run else grid


def tune_cases(args) -> Iterator[Case]:
  """The kernels of `--tune-kernels` alone over their grids: "scan" (Triton-lowered), "mosaic"
  (Mosaic GPU), or a registered linear cell's name (its fused-gate kernels)."""
  for kernel_name in names(args.tune_kernels):
    backend = {"scan": "triton", "mosaic": "mosaic"}.get(kernel_name)
    if backend is None:
      yield from _fused_tune_cases(args, kernel_name)
      continue
    prefix = "scan" if backend == "triton" else "scan-mosaic"
    for batch, time, features, dtype in _tune_shapes(args):
      shape = (batch, time, features)
      for kernel in ("forward", "backward"):
        for config in _tune_grid(args, backend, kernel, dtype, time, features):
          fn = data.kernel_fn(backend, kernel, config, interpret())
          yield _tune_case(args, f"{prefix}-{kernel}-kernel", config, kernel, shape, dtype, fn,
                           data.make_inputs)


def _fused_tune_cases(args, cell_name: str) -> Iterator[Case]:
  op = f"{layers.display(cell_name.lower())}-fused"
  try:
    gates, num_inputs = layers.cell_gates(cell_name.lower())
  except ValueError as exc:
    yield Case(benchmarking.Record("tune", op, "-", "jax", "-", "-", 0, 0, 0,
                                   status=failure(exc)))
    return
  inputs = lambda shape, dtype, seed: data.fused_inputs(shape, num_inputs, dtype, seed)
  for batch, time, features, dtype in _tune_shapes(args):
    shape = (batch, time, features)
    for kernel in ("forward", "backward"):
      for config in _tune_grid(args, "triton", kernel, dtype, time, features):
        fn = data.fused_kernel_fn(kernel, config, gates, interpret())
        yield _tune_case(args, f"{op}-{kernel}-kernel", config, kernel, shape, dtype, fn,
                         inputs)
