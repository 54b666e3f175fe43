"""Names of recurrent cells, as configs spell them, mapped to the factories that build them.

A factory is called as `factory(in_features, hidden_features, *, rngs, dtype, param_dtype,
**cell_kwargs)` and returns a cell with minrnn's interface: `__call__(carry, x)` for one step,
`scan(x, carry, *, implementation)` for a whole sequence (plus `rngs`, dropout keys that the
blocks pass during training, when the cell has dropout of its own) and
`initialize_carry(input_shape)`.
Notebooks add their own cells with `register_cell("mycell", MyCell)` and then train them by
setting `config.model.cell = "mycell"`.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from minrnn import cells

CellFactory = Callable[..., Any]

_CELLS: dict[str, CellFactory] = {}


def register_cell(name: str, factory: CellFactory, *, overwrite: bool = False) -> None:
  """Makes `factory` available to configs as `model.cell = name`."""
  if name in _CELLS and not overwrite:
    raise ValueError(
        f"A cell named {name!r} is already registered; pass overwrite=True to replace it."
    )
  _CELLS[name] = factory


def get_cell(name: str) -> CellFactory:
  """The factory registered as `name`; a ValueError lists the known names otherwise.

  The factory is returned wrapped: a keyword argument that it does not take (a misspelled
  `model.cell_kwargs` entry) is a ValueError naming the cell's options.
  """
  try:
    factory = _CELLS[name]
  except KeyError:
    raise ValueError(
        f"Unknown cell {name!r}. Registered cells: {sorted(_CELLS)}. Register a new one with "
        "minrnn.registry.register_cell(name, factory)."
    ) from None
  return functools.partial(_build, name, factory)


def _build(name: str, factory: CellFactory, *args, **kwargs):
  # A class's own __init__: NNX modules' metaclass hides it behind (*args, **kwargs).
  target = factory.__init__ if isinstance(factory, type) else factory
  parameters = {k: v for k, v in inspect.signature(target).parameters.items() if k != "self"}
  # A factory taking **kwargs passes them on; its callee reports what it does not take.
  if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
      raise ValueError(
          f"Cell {name!r} has no option {', '.join(map(repr, unknown))} (check "
          f"model.cell_kwargs). Its options: {', '.join(sorted(parameters))}.")
  return factory(*args, **kwargs)


def cell_names() -> tuple[str, ...]:
  """The registered cell names, sorted."""
  return tuple(sorted(_CELLS))


register_cell("mingru", cells.MinGRU)
register_cell("minlstm", cells.MinLSTM)
register_cell("gru", cells.GRU)
register_cell("lstm", cells.LSTM)
register_cell("sru", cells.SRUCell)


def _mamba(*args, **kwargs):
  """`minrnn.mamba.Mamba`, imported on first use: it builds on `minrnn.blocks`, which imports
  this registry."""
  from minrnn.mamba import Mamba  # pylint: disable=g-import-not-at-top
  return Mamba(*args, **kwargs)


register_cell("mamba", _mamba)
