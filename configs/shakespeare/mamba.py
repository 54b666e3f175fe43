"""Character-level Tiny Shakespeare with a Mamba mixer, the paper's state-space baseline: the
setup of `configs/shakespeare/mingru.py` (see it for where each setting comes from) with
`model.cell = "mamba"` (`minrnn.mamba.Mamba`, pure JAX) in the same residual block.

[Mamba] state size 16, expansion 2 and the mixer's own conv of 4 taps, so the block's conv is
off. Unlike a plain Mamba stack, the block keeps minrnn's gated MLP, as the minGRU model does.

Variants: `configs/shakespeare/mamba.py:cpu`, a small model for a 2-core CPU.
"""

import importlib.util
import pathlib

_SPEC = importlib.util.spec_from_file_location(
    "shakespeare_mingru", pathlib.Path(__file__).with_name("mingru.py"))
_BASE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BASE)


def get_config(variant: str = "paper"):
  config = _BASE.get_config(variant)
  config.model.cell = "mamba"
  config.model.conv_kernel_size = 0  # The mixer convolves after its expansion.
  config.model.cell_kwargs.state_size = 16  # [Mamba]
  config.model.cell_kwargs.expansion = 2  # [Mamba]
  config.model.cell_kwargs.conv_kernel_size = 4  # [Mamba]
  return config
