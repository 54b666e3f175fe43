"""D4RL Walker2d Medium-Replay, the Decision Transformer baseline (arXiv 2410.01201, 4.2).

    python -m minrnn.train --config configs/d4rl/walker2d_medium_replay_transformer.py \
        --workdir runs/d4rl/walker2d_medium_replay_transformer

Reads `d4rl/walker2d_medium_replay-v2.hdf5` from the data directory.
The settings and their sources (the Decision Transformer's MuJoCo hyper-parameters) are in
`minrnn/rl/config.py`. Variant `:cpu` is a small model for a CPU, not the paper's setting.
"""

from minrnn.rl.config import d4rl_config


def get_config(variant: str = "paper"):
  return d4rl_config("walker2d", "medium_replay", "transformer", variant)
