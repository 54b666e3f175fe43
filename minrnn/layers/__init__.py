"""Layers: every temporal layer behind one interface (`base.TemporalLayer`), their registry, and
the pieces blocks and models are built from (causal conv, MLP, adaptive embedding, parameter init schemes)."""

from minrnn.layers.adaptive import AdaptiveEmbedding
from minrnn.layers.attention import CausalSelfAttention, KVCache
from minrnn.layers.base import State, TemporalLayer
from minrnn.layers.conv import CausalConv
from minrnn.layers.mamba import Mamba, MambaState
from minrnn.layers.init import ParamInit
from minrnn.layers.mlp import MLP
from minrnn.layers.recurrent import Recurrent
from minrnn.layers.registry import TemporalKind, register, register_cell
from minrnn.layers.srupp import SRUppLayer, SRUppState

__all__ = [
    "AdaptiveEmbedding", "CausalConv", "CausalSelfAttention", "KVCache", "MLP", "Mamba",
    "MambaState", "ParamInit", "Recurrent", "SRUppLayer", "SRUppState", "State", "TemporalKind",
    "TemporalLayer", "register", "register_cell",
]
