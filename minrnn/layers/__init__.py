"""Layers: every temporal layer behind one interface (`base.TemporalLayer`), their registry, and
the pieces blocks and models are built from (causal conv, gated MLP, adaptive embedding)."""

from minrnn.layers.adaptive import AdaptiveEmbedding
from minrnn.layers.attention import CausalSelfAttention, KVCache
from minrnn.layers.base import State, TemporalLayer
from minrnn.layers.conv import CausalConv
from minrnn.layers.mamba import Mamba, MambaState
from minrnn.layers.mlp import GatedMLP
from minrnn.layers.recurrent import Recurrent
from minrnn.layers.registry import TemporalKind, register, register_cell
from minrnn.layers.srupp import SRUppLayer, SRUppState

__all__ = [
    "AdaptiveEmbedding", "CausalConv", "CausalSelfAttention", "GatedMLP", "KVCache", "Mamba",
    "MambaState", "Recurrent", "SRUppLayer", "SRUppState", "State", "TemporalKind",
    "TemporalLayer", "register", "register_cell",
]
