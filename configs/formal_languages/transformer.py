"""Formal-language length generalisation with a causal
Transformer (rotary positions, which need no maximum length): the setup of
`configs/formal_languages/mingru.py` (see it for where each setting comes from) with
`model.cell = "transformer"`.

Variants: `:cpu` (2-core CPU, about a minute a task).
"""

import importlib.util
import pathlib

_SPEC = importlib.util.spec_from_file_location(
    "formal_languages_mingru", pathlib.Path(__file__).with_name("mingru.py"))
_BASE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BASE)


def get_config(variant: str = "paper"):
  config = _BASE.get_config(variant)
  config.model.cell = "transformer"
  config.model.conv_kernel_size = 0  # Not used by attention.
  config.model.cell_kwargs.num_heads = 4  # [ours]
  return config
