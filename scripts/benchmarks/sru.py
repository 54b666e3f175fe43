"""The `sru` suite's JAX cases: SRU's recurrence alone (the Pallas kernel per configuration of
its tuning grid) and the library's SRU layer, from `minrnn.kernels.sru.benchmark`'s data. The
PyTorch peers of the suite (the official `sru` package, cuDNN's LSTM) are the "sru" peer group
(`benchmarks.peers`).
"""

from __future__ import annotations

from typing import Iterator

from benchmarks.common import Case, abstract, names, num_sets, with_mode
from minrnn.kernels import benchmarking
from minrnn.kernels.sru import benchmark as data

SUITE = "sru"


def lengths(args) -> list[int]:
  """The suite's lengths: the main shape (`--batch`, `--features`) at every `--T`."""
  return [int(t) for t in names(args.T)]


def _sweep(args):
  from minrnn.kernels.sru import KernelConfig

  return (KernelConfig(),) if args.no_sweep or args.dry_run else data.SWEEP


def _recurrence_case(args, config, time: int, dtype: str, mode: str) -> Case:
  shape = (args.batch, time, args.features)
  record = benchmarking.Record(SUITE, data.RECURRENCE, data.config_name(config), "jax", mode,
                               dtype, *shape)

  def build():
    import jax

    from minrnn.ops.sru import sru_recurrence

    def run(u, x, weight_c, bias):
      return sru_recurrence(u, x, weight_c, bias, implementation="pallas", config=config)[0]

    inputs = lambda seed: data.recurrence_inputs(*shape, dtype, seed)
    h = jax.ShapeDtypeStruct((*shape[:2], 1, shape[2]), dtype)
    # Five arrays of B·T·D per set: u (three), x, and the cotangent of h.
    sets = num_sets(args, 5 * jax.numpy.dtype(dtype).itemsize * shape[0] * shape[1] * shape[2])
    arg_sets = lambda: [(*inputs(s), jax.random.normal(jax.random.key(s), h.shape).astype(dtype))
                        for s in range(sets)]
    return with_mode(run, mode, 4), [*jax.eval_shape(lambda: inputs(0)), h], arg_sets

  return Case(record, build)


def _layer_case(args, implementation: str, time: int, dtype: str, mode: str) -> Case:
  shape = (args.batch, time, args.features)
  impl = data.NAMES.get(implementation, implementation)
  record = benchmarking.Record(SUITE, data.LAYER, impl, "jax", mode, dtype, *shape,
                               note="the library's SRU layer, default kernel configuration")

  def build():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from minrnn.layers import registry

    layer = registry.build("sru", shape[2], implementation=implementation,
                           dtype=jnp.dtype(dtype), rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
    apply = lambda params, x: nnx.merge(graphdef, params, rest)(x)[0]
    sets = num_sets(args, 2 * jnp.dtype(dtype).itemsize * shape[0] * shape[1] * shape[2])

    def arg_sets():
      keys = [jax.random.split(jax.random.key(s)) for s in range(sets)]
      return [(params, jax.random.normal(kx, shape, jnp.float32).astype(dtype),
               jax.random.normal(kc, shape, jnp.float32).astype(dtype)) for kx, kc in keys]

    x = jax.ShapeDtypeStruct(shape, dtype)
    return with_mode(apply, mode, 2), [abstract(params), x, x], arg_sets

  return Case(record, build)


def sru_cases(args) -> Iterator[Case]:
  """The recurrence per kernel configuration, then the layer per path, at every length, dtype
  and mode; reference-only paths at the shortest length and first dtype."""
  dtypes, modes = names(args.dtypes), names(args.modes)
  for dtype in dtypes:
    for time in lengths(args):
      for config in _sweep(args):
        for mode in modes:
          yield _recurrence_case(args, config, time, dtype, mode)
      for implementation in names(args.sru_implementations):
        if implementation in data.REFERENCE_ONLY and (
            time != min(lengths(args)) or dtype != dtypes[0]):
          continue
        for mode in modes:
          yield _layer_case(args, implementation, time, dtype, mode)
