"""Datasets and synthetic tasks as NumPy arrays, found through one data-directory rule
(`minrnn.data.paths`). This layer imports nothing of minrnn above it; `minrnn.tasks` is where
data meets models."""

from minrnn.data.batches import Batch, step_rng
from minrnn.data.formal_languages import FormalLanguage
from minrnn.data.paths import data_dir, fetch_file
from minrnn.data.segments import SegmentStream
from minrnn.data.selective_copy import SelectiveCopy
from minrnn.data.shakespeare import CharVocab, ShakespeareChar

__all__ = ["Batch", "CharVocab", "FormalLanguage", "SegmentStream", "SelectiveCopy",
           "ShakespeareChar", "data_dir", "fetch_file", "step_rng"]
