"""Character-level Tiny Shakespeare with a causal Transformer, the paper's attention baseline
(nanoGPT's `shakespeare_char` model size): the setup of `configs/shakespeare/mingru.py` (see it
for where each setting comes from) with `model.cell = "transformer"`
(`minrnn.transformer.TransformerLM`: pre-norm blocks, rotary positions, gated MLP).

[nanoGPT] 6 layers, 6 heads, width 384; other settings as in the minGRU config. The cpu variant
keeps that config's small model with 4 heads.

Variants: `configs/shakespeare/transformer.py:cpu`, a small model for a 2-core CPU.
"""

import importlib.util
import pathlib

_SPEC = importlib.util.spec_from_file_location(
    "shakespeare_mingru", pathlib.Path(__file__).with_name("mingru.py"))
_BASE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BASE)


def get_config(variant: str = "paper"):
  config = _BASE.get_config(variant)
  config.model.cell = "transformer"
  config.model.conv_kernel_size = 0  # Not used: attention sees the whole context.
  if variant == "paper":
    config.model.num_layers = 6  # [nanoGPT]
    config.model.cell_kwargs.num_heads = 6  # [nanoGPT]
  else:
    config.model.cell_kwargs.num_heads = 4  # [ours] width 64 in heads of 16.
  return config
