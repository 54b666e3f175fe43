"""Recurrent cells: minGRU and minLSTM (parallel + step), SRU, and Flax's GRU/LSTM baselines."""

from minrnn.cells.activations import g, log_g
from minrnn.cells.base import LinearRecurrentCell, SequentialScan
from minrnn.cells.baselines import GRU, LSTM
from minrnn.cells.bidirectional import Bidirectional
from minrnn.cells.mingru import MinGRU
from minrnn.cells.minlstm import MinLSTM
from minrnn.cells.sru import SRU, SRUCell

__all__ = [
    "Bidirectional",
    "GRU",
    "LSTM",
    "LinearRecurrentCell",
    "MinGRU",
    "MinLSTM",
    "SRU",
    "SRUCell",
    "SequentialScan",
    "g",
    "log_g",
]
