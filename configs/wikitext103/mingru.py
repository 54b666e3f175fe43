"""minGRU language model on WikiText-103 through the same long-context path as SRU++
(`configs/wikitext103/srupp_base.py`: data, optimizer, schedule, segments with the state
carried, perplexity over the whole split).

Where each setting comes from:
  [srupp]  everything but the model, from `configs/wikitext103/srupp_base.py`;
  [paper]  the residual block of "Were RNNs All We Needed?" (arXiv 2410.01201), which has no
           WikiText-103 experiment;
  [ours]   the size (8 blocks of width 1024) and the output: minrnn's residual LM has a tied
           full softmax over the 267,735 words, not the adaptive one SRU++ uses, scored
           `model.softmax_chunk_size` positions at a time.

Variants: `:paper` (default), `:gpu`, `:cpu`.
"""

import importlib.util
import pathlib

_HERE = pathlib.Path(__file__).resolve()


def _load(path: pathlib.Path, name: str):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


_BASE = _load(_HERE.with_name("srupp_base.py"), "wikitext103_srupp_base")
_ENWIK8 = _load(_HERE.parents[1] / "enwik8" / "mingru.py", "enwik8_mingru")


def get_config(variant: str = "paper"):
  config = _BASE.get_config(variant)
  config.model = _ENWIK8.residual_model("mingru", variant)
  if variant == "paper":
    config.model.dropout = 0.15  # [srupp]
  config.model.tie_embeddings = True  # [ours] a tied full softmax
  # [ours] The loss scores 1024 positions' logits at a time: never the (64, 768, 267735)
  # logits and their gradient (about 53 GB each). In :cpu, 12 does not divide the 32
  # positions of a batch, so the padded last chunk is exercised.
  config.model.softmax_chunk_size = 12 if variant == "cpu" else 1024
  return config
