"""Recurrent cells: minGRU and minLSTM (parallel + step), and Flax's GRU/LSTM baselines."""

from minrnn.cells.activations import g, log_g
from minrnn.cells.base import LinearRecurrentCell, SequentialScan
from minrnn.cells.baselines import GRU, LSTM
from minrnn.cells.bidirectional import Bidirectional
from minrnn.cells.mingru import MinGRU
from minrnn.cells.minlstm import MinLSTM

__all__ = [
    "Bidirectional",
    "GRU",
    "LSTM",
    "LinearRecurrentCell",
    "MinGRU",
    "MinLSTM",
    "SequentialScan",
    "g",
    "log_g",
]
