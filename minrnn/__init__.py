"""minrnn: fast parallel recurrent networks (minGRU, minLSTM, SRU, SRU++) in JAX and Flax NNX."""

__version__ = "0.2.0"
