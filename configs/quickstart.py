"""The quickstart: selective copying with minGRU, small enough for a laptop CPU (about a minute
on two cores), with no data to download.

    python -m minrnn.train --config configs/quickstart.py --workdir runs/quickstart

It is `configs/selective_copy/mingru.py:cpu`: a context of 64 tokens with 4 to copy, a 2-layer
minGRU of width 32. Sequence accuracy (every copied token right) climbs from 0 to most rows.
"""

import importlib.util
import pathlib

_SPEC = importlib.util.spec_from_file_location(
    "selective_copy_mingru",
    pathlib.Path(__file__).with_name("selective_copy") / "mingru.py")
_BASE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BASE)


def get_config():
  return _BASE.get_config("cpu")
