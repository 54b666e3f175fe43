"""minGRU language model on enwik8 through the same long-context path as SRU++: segments of
1024 bytes, the recurrent state (and the causal conv's window) carried from one segment to the
next, evaluation over the whole split with the state carried, bits per character.

Where each setting comes from:
  [srupp]  the data, optimizer and schedule of `configs/enwik8/srupp_base.py` (the official SRU++
           enwik8 recipe), so the two models are trained alike;
  [paper]  the residual block of "Were RNNs All We Needed?" (arXiv 2410.01201), which has no
           enwik8 experiment;
  [ours]   the size: 8 blocks of width 1024 with a 4x gated MLP, about 118M parameters, close
           to SRU++ base's 108M.

Variants: `:paper` (default, the setting above), `:gpu` (one GPU, minutes), `:cpu` (seconds).
"""

import importlib.util
import pathlib

from ml_collections import config_dict

_SPEC = importlib.util.spec_from_file_location(
    "enwik8_srupp_base", pathlib.Path(__file__).with_name("srupp_base.py"))
_BASE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BASE)


def residual_model(cell: str, variant: str) -> config_dict.ConfigDict:
  """The model section of a minRNN residual-block LM at the variant's size."""
  model = config_dict.ConfigDict()
  model.cell = cell
  model.cell_kwargs = config_dict.ConfigDict()
  model.features = {"paper": 1024, "gpu": 512, "cpu": 32}[variant]  # [ours]
  model.num_layers = {"paper": 8, "gpu": 4, "cpu": 2}[variant]  # [ours]
  model.conv_kernel_size = 4  # [paper] (the Mamba-style conv of minrnn's block)
  model.mlp_expansion = 4  # [paper]
  model.dropout = {"paper": 0.22, "gpu": 0.1, "cpu": 0.0}[variant]  # [srupp]
  model.tie_embeddings = False  # [srupp] untied output layer
  model.implementation = config_dict.placeholder(str)  # None: the platform's fastest.
  model.softmax_chunk_size = config_dict.placeholder(int)  # None: full logits.
  model.dtype = "float32"
  return model


def get_config(variant: str = "paper") -> config_dict.ConfigDict:
  config = _BASE.get_config(variant)
  config.model = residual_model("mingru", variant)
  return config
