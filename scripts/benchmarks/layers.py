"""The `layers` suite: any registered temporal layer (`minrnn.layers.registry`) by name, through
the scan paths that apply to it.

A linear recurrent cell (a `LinearRecurrentCell`, the user's too) is timed through the paths of
`minrnn.kernels.linear_scan.benchmark.LAYER_IMPLEMENTATIONS` that compile on the platform (or
those of `--layer-implementations`), `pallas_fused` only when the cell has fused gates; any
other layer through its default path ("default"). A cell registered by the user's module is
benchmarked with `--import module --layers name`, without editing this file.
"""

from __future__ import annotations

from typing import Any, Iterator

from benchmarks.common import Case, abstract, failure, names, num_sets, platform, shapes
from benchmarks.common import with_mode
from minrnn.kernels import benchmarking
from minrnn.kernels.linear_scan import benchmark as scan_data

# Results names of the built-in layers (the names the recorded results and the peers use).
DISPLAY = {"mingru": "minGRU", "minlstm": "minLSTM", "gru": "GRU", "lstm": "LSTM", "sru": "SRU"}
# Arrays of (batch, time, features) a layer moves at least once: its input and output forward;
# the output gradient in, the input and output read again and the input gradient out backward.
FLOOR_ARRAYS = {"fwd": 2, "fwd+bwd": 6}
DEFAULT = "default"


def display(name: str) -> str:
  return DISPLAY.get(name, name)


def _linear_cell(kind) -> bool:
  from minrnn.cells.base import LinearRecurrentCell

  return isinstance(kind.cell, type) and issubclass(kind.cell, LinearRecurrentCell)


def _has_gates(kind) -> bool:
  """Whether a linear cell says its gates (so the fused-gate kernel can compute them)."""
  from minrnn.cells.base import LinearRecurrentCell

  return kind.cell.gates is not LinearRecurrentCell.gates


def cell_gates(name: str) -> tuple[Any, int]:
  """`(gates, num_projections)` of the registered linear cell `name`, whose fused-gate kernels
  the tune suite sweeps; a ValueError if it has none."""
  from flax import nnx

  from minrnn.layers import registry

  kind = registry.get(name)
  if not _linear_cell(kind):
    raise ValueError(f"{name!r} is not a linear recurrent cell: no fused-gate kernels")
  cell = kind.cell(4, 4, rngs=nnx.Rngs(0))
  if cell.gates() is None:
    raise ValueError(f"{name!r} has no gates(): no fused-gate kernels")
  return cell.gates(), cell.num_projections


def paths(kind, platform_name: str, requested: list[str]) -> tuple[list[str], dict[str, str]]:
  """The paths `kind` is timed through, and the requested ones that do not apply (with why)."""
  from minrnn import ops

  if not _linear_cell(kind):
    return [DEFAULT], {}
  has_gates = _has_gates(kind)
  chosen, refused = [], {}
  for name in requested or scan_data.LAYER_IMPLEMENTATIONS:
    try:
      entry = ops.resolve(name)
    except ValueError as exc:
      refused[name] = failure(exc)
      continue
    if entry.inputs is ops.Inputs.GATES and not has_gates:
      refused[name] = "skipped: the cell has no fused gates"
    elif requested or entry.supports(platform_name):
      chosen.append(name)
  return chosen, (refused if requested else {})


def parse_options(text: str | None) -> dict[str, dict[str, Any]]:
  """`--layer-options "transformer:num_heads=4,mamba:state_size=8"` -> per-layer options
  (values read as Python literals, else kept as strings)."""
  import ast

  options: dict[str, dict[str, Any]] = {}
  for item in names(text):
    layer, _, setting = item.partition(":")
    key, _, value = setting.partition("=")
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass
    options.setdefault(layer, {})[key] = value
  return options


def _layer_case(args, name: str, impl: str, shape, dtype: str, mode: str,
                options: dict[str, Any]) -> Case:
  record = benchmarking.Record("layers", display(name), impl, "jax", mode, dtype, *shape)

  def build():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from minrnn.layers import registry

    layer = registry.build(name, shape[2], expansion=None,
                           implementation=None if impl == DEFAULT else impl,
                           dtype=jnp.dtype(dtype), rngs=nnx.Rngs(0), **options)
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)

    def apply(params, x):
      return nnx.merge(graphdef, params, rest)(x)[0]

    fn = with_mode(apply, mode, 2)

    def arg_sets():
      out = []
      for s in range(num_sets(args, 2 * jnp.dtype(dtype).itemsize * shape[0] * shape[1]
                              * shape[2])):
        kx, kc = jax.random.split(jax.random.key(s))
        x = jax.random.normal(kx, shape, jnp.float32).astype(dtype)
        out.append((params, x, jax.random.normal(kc, shape, jnp.float32).astype(dtype)))
      return out

    x = jax.ShapeDtypeStruct(shape, dtype)
    return fn, [abstract(params), x, x], arg_sets

  return Case(record, build)


def layer_cases(args) -> Iterator[Case]:
  """Every layer of `--layers` through its paths, at every shape, dtype and mode."""
  from minrnn.layers import registry

  options = parse_options(args.layer_options)
  for name in names(args.layers):
    try:
      kind = registry.get(name)
    except ValueError as exc:
      yield Case(benchmarking.Record("layers", display(name), "-", "jax", "-", "-", 0, 0, 0,
                                     status=failure(exc)))
      continue
    chosen, refused = paths(kind, platform(args), names(args.layer_implementations))
    for impl, status in refused.items():
      yield Case(benchmarking.Record("layers", display(name), impl, "jax", "-", "-", 0, 0, 0,
                                     status=status))
    for impl in chosen:
      for shape in shapes(args):
        for dtype in names(args.dtypes):
          if impl in scan_data.FLOAT32_ONLY and dtype != "float32":
            continue
          for mode in names(args.modes):
            yield _layer_case(args, name, impl, shape, dtype, mode, options.get(name, {}))
