"""minLSTM language model on enwik8: `configs/enwik8/mingru.py` (see it for where each setting
comes from) with `model.cell = "minlstm"` (length-independence scaling on, the default).

Variants: `:paper` (default), `:gpu`, `:cpu`.
"""

import importlib.util
import pathlib

_SPEC = importlib.util.spec_from_file_location(
    "enwik8_mingru", pathlib.Path(__file__).with_name("mingru.py"))
_BASE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BASE)


def get_config(variant: str = "paper"):
  config = _BASE.get_config(variant)
  config.model.cell = "minlstm"
  return config
