"""The one registry of temporal layers: the names configs use for `model.cell`.

    model.cell = "mingru" | "minlstm" | "gru" | "lstm" | "sru" | "mamba" | "transformer" | "srupp"

Each name maps to a `TemporalKind`, whose `build(features, *, layer, num_layers, expansion,
implementation, dtype, param_dtype, init, rngs, **options)` returns a layer with the interface of
`minrnn.layers.base` (`options` are the config's `model.cell_kwargs`; `init` the parameter
scheme of `minrnn.layers.init`, which the recurrent kinds honour and the others accept only at
its default). A new recurrent cell is one line, `register_cell("mycell", MyCell)`: it is
wrapped in `Recurrent`, and the contract tests (tests/test_temporal_layers.py) run every
registered kind, so it is tested without editing any test.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

from minrnn import cells
from minrnn.layers.attention import CausalSelfAttention
from minrnn.layers.base import TemporalLayer
from minrnn.layers.init import FLAX, ParamInit
from minrnn.layers.mamba import Mamba
from minrnn.layers.recurrent import CellFactory, Recurrent
from minrnn.layers.srupp import SRUppLayer

# build(features, *, layer, num_layers, expansion, implementation, dtype, param_dtype, init,
#       rngs, **options) -> TemporalLayer
Builder = Callable[..., TemporalLayer]


@dataclasses.dataclass(frozen=True)
class TemporalKind:
  """A registered temporal layer.

  Attributes:
    name: the config name.
    build: see the module docstring; `layer` (0-based) and `num_layers` let a kind vary by
      depth (SRU++ puts attention in every k-th layer).
    cell: for kinds that wrap a recurrent cell, its class or factory (the contract tests also
      drive it through Flax's `nnx.RNN`); None otherwise.
  """

  name: str
  build: Builder
  cell: CellFactory | None = None


_KINDS: dict[str, TemporalKind] = {}


def register(kind: TemporalKind, *, overwrite: bool = False) -> None:
  """Makes `kind` available to configs as `model.cell = kind.name`."""
  if kind.name in _KINDS and not overwrite:
    raise ValueError(f"A temporal layer named {kind.name!r} is already registered; pass "
                     "overwrite=True to replace it.")
  _KINDS[kind.name] = kind


def _build_recurrent(features, *, cell, layer, num_layers, **kwargs):
  del layer, num_layers  # Every layer alike.
  return Recurrent(features, cell, **kwargs)


def register_cell(name: str, cell: CellFactory, *, overwrite: bool = False) -> None:
  """Registers a recurrent cell (a `minrnn.cells.base.ScanCell` class or factory, built as
  `cell(in_features, hidden_features, *, dtype, param_dtype, rngs, **options)`), wrapped in
  `Recurrent`. Then any config can use it: `--config.model.cell=name`."""
  register(TemporalKind(name, functools.partial(_build_recurrent, cell=cell), cell=cell),
           overwrite=overwrite)


def get(name: str) -> TemporalKind:
  """The kind registered as `name`; a ValueError lists every registered kind otherwise."""
  if name not in _KINDS:
    raise ValueError(
        f"Unknown temporal layer {name!r} (model.cell). Registered: {', '.join(names())}. "
        "Register a new cell with minrnn.layers.registry.register_cell(name, cell).")
  return _KINDS[name]


def names() -> tuple[str, ...]:
  """The registered names, sorted."""
  return tuple(sorted(_KINDS))


def build(name: str, features: int, *, layer: int = 0, num_layers: int = 1,
          **kwargs: Any) -> TemporalLayer:
  """The temporal layer `name` of width `features`: `get(name).build(...)`. An option the
  layer does not take (a misspelled `model.cell_kwargs` entry) is a ValueError naming it."""
  kind = get(name)
  try:
    return kind.build(features, layer=layer, num_layers=num_layers, **kwargs)
  except TypeError as e:
    if "unexpected keyword argument" not in str(e):
      raise
    raise ValueError(
        f"Temporal layer {name!r} was given an option it does not take ({e}); check "
        "model.cell_kwargs against its constructor's arguments (a model.init other than "
        "'flax' hands the cell kernel_init and bias_init).") from None


def _refuse_expansion(name: str, expansion: int | None) -> None:
  if expansion is not None:
    raise ValueError(f"model.expansion applies to recurrent cells; {name!r} has its own "
                     "widths (leave expansion None).")


def _refuse_init(name: str, init: ParamInit) -> None:
  if init is not FLAX:
    raise ValueError(f"model.init={init.name!r} sets the recurrent cells' and the blocks' "
                     f"initialisation; {name!r} draws its own parameters (use model.init="
                     "'flax').")


def _build_attention(features, *, layer, num_layers, expansion, implementation, init=FLAX,
                     **kwargs):
  del layer, num_layers, implementation  # No scan.
  _refuse_expansion("transformer", expansion)
  _refuse_init("transformer", init)
  return CausalSelfAttention(features, **kwargs)


def _build_mamba(features, *, layer, num_layers, expansion, init=FLAX, **kwargs):
  del layer, num_layers
  _refuse_expansion("mamba", expansion)
  _refuse_init("mamba", init)
  return Mamba(features, **kwargs)


def _build_srupp(features, *, layer, num_layers, expansion, attention_every=1,
                 memory_length=0, init=FLAX, **kwargs):
  """Attention in layers k, 2k, ... (counting from 1), with the memory; the highway dropout in
  every layer but the last, as the official SRU++ models."""
  _refuse_expansion("srupp", expansion)
  _refuse_init("srupp", init)
  if attention_every < 1:
    raise ValueError(f"attention_every must be >= 1, got {attention_every}.")
  attention = (layer + 1) % attention_every == 0
  return SRUppLayer(features, attention=attention,
                    memory_length=memory_length if attention else 0,
                    highway_dropout=layer + 1 < num_layers, **kwargs)


register_cell("mingru", cells.MinGRU)
register_cell("minlstm", cells.MinLSTM)
register_cell("gru", cells.GRU)
register_cell("lstm", cells.LSTM)
register_cell("sru", cells.SRUCell)
register(TemporalKind("mamba", _build_mamba))
register(TemporalKind("transformer", _build_attention))
register(TemporalKind("srupp", _build_srupp))
