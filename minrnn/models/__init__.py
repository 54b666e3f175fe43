"""Models: the one residual block, the one token language model, the Decision model for offline
RL, the sequence classifier, generation, and the builders that make them from a config's
`model` section."""

from minrnn.models.block import BlockState, ResidualBlock
from minrnn.models.build import (
    block_factory,
    build_classifier,
    build_decision_model,
    build_language_model,
    dtype_from_name,
)
from minrnn.models.classifier import SequenceClassifier
from minrnn.models.decision import DecisionModel
from minrnn.models.generation import make_generator, sample_token
from minrnn.models.lm import LanguageModel

__all__ = [
    "BlockState", "DecisionModel", "LanguageModel", "ResidualBlock", "SequenceClassifier",
    "block_factory", "build_classifier", "build_decision_model", "build_language_model",
    "dtype_from_name", "make_generator", "sample_token",
]
