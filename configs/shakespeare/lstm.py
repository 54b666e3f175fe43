"""Character-level Tiny Shakespeare with an LSTM, the paper's traditional baseline (Flax's
LSTMCell): the setup of `configs/shakespeare/mingru.py` (see it for where each setting comes
from) with `model.cell = "lstm"`.

Variants: `configs/shakespeare/lstm.py:cpu`, a small model for a 2-core CPU.
"""

import importlib.util
import pathlib

_SPEC = importlib.util.spec_from_file_location(
    "shakespeare_mingru", pathlib.Path(__file__).with_name("mingru.py"))
_BASE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BASE)


def get_config(variant: str = "paper"):
  config = _BASE.get_config(variant)
  config.model.cell = "lstm"
  return config
