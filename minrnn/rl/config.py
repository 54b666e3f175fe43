"""The one place for the D4RL configs' settings; `configs/d4rl/<env>_<dataset>_<cell>.py` call
`d4rl_config` with their names.

Where each setting comes from:
  [DT]     the Decision Transformer's MuJoCo settings (Chen et al., 2021, arXiv 2106.01345,
           Table 8 and its released gym code), which the minRNN paper's offline-RL experiment
           (Feng et al., 2024, arXiv 2410.01201, section 4.2) keeps, swapping the Transformer
           for minLSTM/minGRU: 3 layers, width 128, context 20, batch 64, dropout 0.1, learning
           rate 1e-4 after 10k linear warmup steps, weight decay 1e-4, gradient clip 0.25,
           100k steps, returns scaled by 1/1000, timestep embedding of 1000, target returns
           (HalfCheetah 6000, Hopper 3600, Walker2d 5000, and half of each), one attention
           head for the "transformer" cell (that baseline, built from this codebase's pre-norm
           blocks with rotary positions);
  [paper]  the minRNN paper: scores are D4RL-normalised and averaged over 5 training seeds;
  [D4RL]   the datasets' file names and the environments' 1000-step episodes;
  [ours]   choices of this codebase (the residual block's gated MLP and RMSNorm come from
           `minrnn.blocks`; a held-out 2% of trajectories gives an evaluation loss).

Variants: "paper" (default), and "cpu", a small model that trains in minutes on a 2-core CPU
(not the paper's setting; used for the recorded run on a generated, non-D4RL dataset).
"""

from __future__ import annotations

from ml_collections import config_dict

from minrnn.data.d4rl import DATASETS, ENVS, d4rl_file_name
from minrnn.run_config import base_config

# [DT] return-to-go targets; the first is the paper's and gives the headline score.
TARGET_RETURNS = {"halfcheetah": (6000.0, 3000.0), "hopper": (3600.0, 1800.0),
                  "walker2d": (5000.0, 2500.0)}
CELLS = ("mingru", "minlstm", "transformer")


def d4rl_config(env: str, dataset: str, cell: str,
                variant: str = "paper") -> config_dict.ConfigDict:
  """The config of one table entry: `env` in ENVS, `dataset` in DATASETS, `cell` in CELLS
  (or any cell registered in `minrnn.registry`)."""
  if env not in ENVS or dataset not in DATASETS:
    raise ValueError(f"Unknown D4RL task {env}-{dataset}; environments {ENVS}, datasets "
                     f"{DATASETS}.")
  config = base_config()
  config.seed = 0  # [paper] the table averages seeds 0-4 (experiments/d4rl/table.py).

  config.data = config_dict.ConfigDict()
  config.data.name = "d4rl"
  config.data.env = env
  config.data.dataset = dataset
  config.data.dir = config_dict.placeholder(str)  # None: $MINRNN_DATA_DIR, then the user cache.
  config.data.file = f"d4rl/{d4rl_file_name(env, dataset)}"  # [D4RL]
  config.data.batch_size = 64  # [DT]
  config.data.context = 20  # [DT] K
  config.data.return_scale = 1000.0  # [DT]
  config.data.max_timestep = 1000  # [DT] max_ep_len, [D4RL]
  config.data.eval_fraction = 0.02  # [ours]
  config.data.eval_batches = 8  # [ours]
  config.data.rollouts = config_dict.ConfigDict()
  config.data.rollouts.target_returns = TARGET_RETURNS[env]  # [DT]
  config.data.rollouts.num_episodes = 10  # [ours] per training seed
  config.data.rollouts.seed = 1000  # [ours] environment seeds 1000, 1001, ...
  config.data.rollouts.max_steps = 1000  # [D4RL]
  config.data.rollouts.progress_bar = True

  config.model = config_dict.ConfigDict()
  config.model.cell = cell
  config.model.cell_kwargs = config_dict.ConfigDict()
  if cell == "transformer":
    config.model.cell_kwargs.num_heads = 1  # [DT] n_head
  config.model.features = 128  # [DT] embed_dim
  config.model.num_layers = 3  # [DT] n_layer
  config.model.conv_kernel_size = 0  # [DT] token order comes from the sequence model alone
  config.model.mlp_expansion = 4  # [DT] GPT-2's MLP width 4 * d
  config.model.dropout = 0.1  # [DT]
  config.model.implementation = config_dict.placeholder(str)  # None: the platform's fastest.
  config.model.dtype = "float32"  # [ours]

  config.train.num_steps = 100_000  # [DT] 10 iterations of 10k steps
  config.train.learning_rate = 1e-4  # [DT]
  config.train.end_learning_rate = 1e-4  # [DT] constant after the warmup
  config.train.warmup_steps = 10_000  # [DT]
  config.train.weight_decay = 1e-4  # [DT]
  config.train.b1 = 0.9  # [DT] AdamW defaults
  config.train.b2 = 0.999  # [DT]
  config.train.grad_clip = 0.25  # [DT]
  config.train.log_every = 100  # [ours]
  config.train.eval_every = 5000  # [ours]
  config.train.checkpoint_every = 5000  # [ours]
  config.train.keep_checkpoints = 2  # [ours]

  if variant == "cpu":
    # [ours] Small enough for a 2-core CPU in a few minutes.
    config.data.batch_size = 32
    config.data.eval_fraction = 0.1
    config.data.eval_batches = 4
    config.data.rollouts.num_episodes = 5
    config.model.features = 64
    config.model.num_layers = 2
    config.model.mlp_expansion = 2
    config.train.num_steps = 2000
    config.train.learning_rate = 1e-3
    config.train.end_learning_rate = 1e-4
    config.train.warmup_steps = 200
    config.train.log_every = 50
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
  elif variant != "paper":
    raise ValueError(f"Unknown variant {variant!r}; choose 'paper' or 'cpu'.")
  return config
