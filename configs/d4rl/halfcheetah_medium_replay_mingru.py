"""D4RL HalfCheetah Medium-Replay with a Decision-style minGRU (arXiv 2410.01201, section 4.2).

    python -m minrnn.train --config configs/d4rl/halfcheetah_medium_replay_mingru.py \
        --workdir runs/d4rl/halfcheetah_medium_replay_mingru

Reads `d4rl/halfcheetah_medium_replay-v2.hdf5` from the data directory.
The settings and their sources (the Decision Transformer's MuJoCo hyper-parameters) are in
`minrnn/rl/config.py`. Variant `:cpu` is a small model for a CPU, not the paper's setting.
"""

from minrnn.rl.config import d4rl_config


def get_config(variant: str = "paper"):
  return d4rl_config("halfcheetah", "medium_replay", "mingru", variant)
