"""Offline RL on D4RL with a Decision-style model (arXiv 2410.01201, section 4.2).

    python -m minrnn.train --config configs/d4rl.py:hopper-medium,mingru --workdir runs/hm

Variant `<env>-<dataset>,<model>[,<size>]`: env `halfcheetah`, `hopper` or `walker2d`; dataset
`medium`, `medium-replay` or `medium-expert` (read from `d4rl/<env>_<dataset>-v2.hdf5` in the
data directory, D4RL's file names); model `mingru` (default), `minlstm` or `transformer` (the
Decision Transformer baseline, built from this codebase's pre-norm blocks with rotary
positions); size `paper` (default) or `cpu`, a small model that trains in minutes on a 2-core
CPU (not the paper's setting; used for the recorded run on a generated, non-D4RL dataset).

Where each setting comes from:
  [DT]     the Decision Transformer's MuJoCo settings (Chen et al., 2021, arXiv 2106.01345,
           Table 8 and its released gym code), which the minRNN paper's offline-RL experiment
           keeps, swapping the Transformer for minLSTM/minGRU: 3 layers, width 128, context 20,
           batch 64, dropout 0.1, learning rate 1e-4 after 10k linear warmup steps, weight
           decay 1e-4, gradient clip 0.25, 100k steps, returns scaled by 1/1000, timestep
           embedding of 1000, target returns (HalfCheetah 6000, Hopper 3600, Walker2d 5000, and
           half of each), one attention head for the transformer; DT evaluates by re-reading the
           last K steps at every environment step (rollout mode "window");
  [paper]  the minRNN paper: scores are D4RL-normalised and averaged over 5 training seeds;
  [TFDS]   TensorFlow Datasets' names of the same datasets (`data.source = "tfds"`);
  [D4RL]   the datasets' file names and the environments' 1000-step episodes;
  [ours]   choices of this codebase (the residual block's gated MLP and RMSNorm; a held-out 2%
           of trajectories gives an evaluation loss; the recurrent models roll out in step mode
           with their state carried through the episode).
"""

from ml_collections import config_dict

from minrnn.training.config import base_config, block_defaults, parse_variant

ENVS = ("halfcheetah", "hopper", "walker2d")
DATASETS = ("medium", "medium-replay", "medium-expert")
TASKS = tuple(f"{env}-{dataset}" for env in ENVS for dataset in DATASETS)
MODELS = ("mingru", "minlstm", "transformer")
# [DT] return-to-go targets; the first is the paper's and gives the headline score.
TARGET_RETURNS = {"halfcheetah": (6000.0, 3000.0), "hopper": (3600.0, 1800.0),
                  "walker2d": (5000.0, 2500.0)}


def get_config(variant: str = "") -> config_dict.ConfigDict:
  choice = parse_variant(variant, "configs/d4rl.py", task=(TASKS, None),
                         model=(MODELS, "mingru"), size=(("paper", "cpu"), "paper"))
  env, dataset = choice["task"].split("-", 1)
  config = base_config()
  config.seed = 0  # [paper] the table averages seeds 0-4 (experiments/d4rl/table.py).

  config.data = config_dict.ConfigDict()
  config.data.name = "d4rl"
  config.data.env = env
  config.data.dataset = dataset
  config.data.dir = config_dict.placeholder(str)  # None: $MINRNN_DATA_DIR, then the user cache.
  config.data.file = f"d4rl/{env}_{dataset.replace('-', '_')}-v2.hdf5"  # [D4RL]
  # [ours] "files": the hdf5 file by the data-directory rule; "tfds": TFDS's prepared RLDS
  # episodes of the same dataset (ArrayRecord; `pip install -e ".[tfds]"`).
  config.data.source = "files"
  config.data.tfds_name = f"d4rl_mujoco_{env}/v2-{dataset}"  # [TFDS]
  # None: $TFDS_DATA_DIR, else ~/tensorflow_datasets (TFDS's default).
  config.data.tfds_dir = config_dict.placeholder(str)
  config.data.batch_size = 64  # [DT]
  config.data.context = 20  # [DT] K
  config.data.return_scale = 1000.0  # [DT]
  config.data.max_timestep = 1000  # [DT] max_ep_len, [D4RL]
  config.data.eval_fraction = 0.02  # [ours]
  config.data.eval_batches = 8  # [ours]
  config.data.rollouts = config_dict.ConfigDict()
  config.data.rollouts.target_returns = TARGET_RETURNS[env]  # [DT]
  config.data.rollouts.num_episodes = 10  # [ours] per training seed
  # [DT] the transformer re-reads its window; [ours] the recurrent models carry their state.
  config.data.rollouts.mode = "window" if choice["model"] == "transformer" else "step"
  config.data.rollouts.seed = 1000  # [ours] environment seeds 1000, 1001, ...
  config.data.rollouts.max_steps = 1000  # [D4RL]
  config.data.rollouts.progress_bar = True

  config.model = block_defaults()
  config.model.cell = choice["model"]
  if choice["model"] == "transformer":
    config.model.cell_kwargs.num_heads = 1  # [DT] n_head
  config.model.features = 128  # [DT] embed_dim
  config.model.num_layers = 3  # [DT] n_layer
  config.model.conv_kernel_size = 0  # [DT] token order comes from the sequence model alone
  config.model.mlp_expansion = 4  # [DT] GPT-2's MLP width 4 * d
  config.model.dropout = 0.1  # [DT]

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

  if choice["size"] == "cpu":
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
  return config
