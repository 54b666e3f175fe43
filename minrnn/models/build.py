"""Models from a config's `model` section: the one place where config keys become modules.

The section's keys (their defaults and sources are in `minrnn.training.config`):

- blocks: `cell` (a name in `minrnn.layers.registry`), `cell_kwargs`, `features`,
  `num_layers`, `expansion`, `conv_kernel_size`, `conv_residual`, `mlp_expansion`,
  `mlp_gated`, `dropout`, `pre_norm`, `residual`, `implementation`, `dtype`, `init` (a scheme
  of `minrnn.layers.init`, for the blocks and the model's embeddings and head alike);
- the language model's embedding and head: `final_norm`, `io_dropout`, `tie_embeddings`,
  `head_bias`, `adaptive_cutoffs`, `div_val`, `embed_features`, `emb_dropout`,
  `softmax_chunk_size`;
- the sequence classifier's: `final_norm`, `head_bias`, `readout`.

`implementation` given to a builder (the training loop's sequence-parallel spec) replaces the
section's.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.layers import init as param_init
from minrnn.layers import registry
from minrnn.models.block import ResidualBlock
from minrnn.models.classifier import SequenceClassifier
from minrnn.models.decision import DecisionModel
from minrnn.models.lm import BlockFactory, LanguageModel

DTYPES: Mapping[str, Dtype] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def dtype_from_name(name: str) -> Dtype:
  """`"float32"` or `"bfloat16"` as a JAX dtype."""
  if name not in DTYPES:
    raise ValueError(f"Unknown dtype {name!r} (model.dtype); choose one of {sorted(DTYPES)}.")
  return DTYPES[name]


def _temporal(rngs, *, model: Any, layer: int, implementation: Any, dtype: Dtype | None,
              init: param_init.ParamInit):
  return registry.build(
      model.cell, model.features, layer=layer, num_layers=model.num_layers,
      expansion=model.expansion, implementation=implementation, dtype=dtype, init=init,
      rngs=rngs, **dict(model.cell_kwargs))


def block_factory(model: Any, implementation: Any = None) -> BlockFactory:
  """`(layer, rngs) -> ResidualBlock` for the section's blocks."""
  registry.get(model.cell)  # An unknown name fails here, listing the registered ones.
  implementation = model.implementation if implementation is None else implementation
  dtype = dtype_from_name(model.dtype)
  init = param_init.get(model.init)

  def block(layer: int, rngs: nnx.Rngs) -> ResidualBlock:
    temporal = functools.partial(_temporal, model=model, layer=layer,
                                 implementation=implementation, dtype=dtype, init=init)
    return ResidualBlock(model.features, temporal, conv_kernel_size=model.conv_kernel_size,
                         conv_residual=model.conv_residual, mlp_expansion=model.mlp_expansion,
                         mlp_gated=model.mlp_gated, dropout=model.dropout,
                         pre_norm=model.pre_norm, residual=model.residual, dtype=dtype,
                         init=init, rngs=rngs)

  return block


def build_language_model(model: Any, vocab_size: int, seed: int,
                         implementation: Any = None) -> LanguageModel:
  """The `LanguageModel` of a config's `model` section, initialised from `seed`."""
  cutoffs = model.adaptive_cutoffs
  return LanguageModel(
      vocab_size, features=model.features, num_layers=model.num_layers,
      block=block_factory(model, implementation), final_norm=model.final_norm,
      io_dropout=model.io_dropout, tie_embeddings=model.tie_embeddings,
      head_bias=model.head_bias, adaptive_cutoffs=None if cutoffs is None else tuple(cutoffs),
      div_val=model.div_val, embed_features=model.embed_features,
      emb_dropout=model.emb_dropout,
      softmax_chunk_size=model.softmax_chunk_size, dtype=dtype_from_name(model.dtype),
      init=param_init.get(model.init), rngs=nnx.Rngs(seed))


def build_decision_model(model: Any, *, state_dim: int, act_dim: int, max_timestep: int,
                         seed: int, implementation: Any = None) -> DecisionModel:
  """The `DecisionModel` of a config's `model` section (the blocks' keys), initialised from
  `seed`; `model.dropout` also drops the token embeddings."""
  return DecisionModel(
      state_dim, act_dim, features=model.features, num_layers=model.num_layers,
      block=block_factory(model, implementation), max_timestep=max_timestep,
      dropout=model.dropout, dtype=dtype_from_name(model.dtype),
      init=param_init.get(model.init), rngs=nnx.Rngs(seed))


def build_classifier(model: Any, *, vocab_size: int, num_classes: int, seed: int,
                     implementation: Any = None) -> SequenceClassifier:
  """The `SequenceClassifier` of a config's `model` section, initialised from `seed`."""
  return SequenceClassifier(
      vocab_size, num_classes, features=model.features, num_layers=model.num_layers,
      block=block_factory(model, implementation), readout=model.readout,
      final_norm=model.final_norm, head_bias=model.head_bias,
      dtype=dtype_from_name(model.dtype), init=param_init.get(model.init), rngs=nnx.Rngs(seed))
