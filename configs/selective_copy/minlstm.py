"""Selective copying with minLSTM: the same setup as `configs/selective_copy/mingru.py` (see it
for where each setting comes from) with `model.cell = "minlstm"`.

Variants: `:cpu` (2-core CPU, minutes) and `:short` (context 512, GPU minutes).
"""

import importlib.util
import pathlib

_SPEC = importlib.util.spec_from_file_location(
    "selective_copy_mingru", pathlib.Path(__file__).with_name("mingru.py"))
_BASE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BASE)


def get_config(variant: str = "paper"):
  config = _BASE.get_config(variant)
  config.model.cell = "minlstm"
  return config
