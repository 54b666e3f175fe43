"""Offline RL on D4RL with a Decision-style model (arXiv 2410.01201, section 4.2, Table 3).

    python -m minrnn.train --config configs/d4rl.py:hopper-medium,mingru --workdir runs/hm

Variant `<env>-<dataset>,<model>[,<size>]`: env `halfcheetah`, `hopper` or `walker2d`; dataset
`medium`, `medium-replay` or `medium-expert` (read from `d4rl/<env>_<dataset>-v2.hdf5` in the
data directory, D4RL's file names); model `mingru` (default), `minlstm` or `transformer` (the
Decision Transformer baseline, built from this codebase's pre-norm blocks with rotary
positions); size `paper` (default: the paper's protocol) or `cpu`, a small model that trains in
minutes on a 2-core CPU (not the paper's setting; used for the recorded run on a generated,
non-D4RL dataset).

Where each setting comes from:
  [paper]  the minRNN paper, which follows Decision Mamba (Ota, 2024): the Decision-Transformer
           token layout, 3 layers of minRNN -> MLP, dropout 0.1, context K = 20, width 256 for
           Hopper-Medium and Hopper-Medium-Replay and 128 otherwise, learning rate 1e-4 for
           Hopper-Medium, Hopper-Medium-Replay and Walker2d-Medium and 1e-3 for the other six,
           AdamW with weight decay 1e-4, 10k linear warm-up steps, 100k steps, batch 64;
           PyTorch's initialisation; D4RL-normalised scores averaged over 5 training seeds;
  [DMamba] the Decision-Mamba code (`Toshihiro-Ota/decision-mamba`, gym/): `experiment.py`
           get_batch (windows padded at the start: zero states before normalisation, actions
           -10), `util/trainer.py` (gradient clip 0.25, AdamW over every parameter, a constant
           learning rate after the warm-up, the windowed evaluation: the last K steps read again
           at every environment step, left-padded with zeros, 100 episodes per target),
           `models/layers.py` (the block's MLP: Linear -> GELU -> Linear, 4x wide);
  [DT]     the Decision Transformer's MuJoCo settings (Chen et al., 2021, arXiv 2106.01345,
           Table 8 and its gym code), kept by Decision Mamba: returns scaled by 1/1000,
           timestep embedding of 1000, target returns (Table 8: HalfCheetah 6000, Hopper 3600,
           Walker2d 5000 first; the code's other target second); the transformer baseline's
           width 128, learning rate 1e-4 and one head;
  [official] the minRNN code (`BorealisAI/minRNNs`): minLSTM's forget-gate bias offset 3 and a
           learned initial state, its defaults;
  [TFDS]   TensorFlow Datasets' names of the same datasets (`data.source = "tfds"`);
  [D4RL]   the datasets' file names and the environments' 1000-step episodes;
  [NR]     not in the text or code we could read: our choice, named here;
  [ours]   choices of this codebase (RMSNorm; a held-out 2% of trajectories gives an
           evaluation loss).
"""

from ml_collections import config_dict

from minrnn.training.config import base_config, block_defaults, parse_variant

ENVS = ("halfcheetah", "hopper", "walker2d")
DATASETS = ("medium", "medium-replay", "medium-expert")
TASKS = tuple(f"{env}-{dataset}" for env in ENVS for dataset in DATASETS)
MODELS = ("mingru", "minlstm", "transformer")
# [DT] return-to-go targets; the first (Table 8) gives the headline score.
TARGET_RETURNS = {"halfcheetah": (6000.0, 12000.0), "hopper": (3600.0, 1800.0),
                  "walker2d": (5000.0, 2500.0)}
# [paper] the wider model and the smaller learning rate.
WIDTH_256 = ("hopper-medium", "hopper-medium-replay")
LEARNING_RATE_1E4 = ("hopper-medium", "hopper-medium-replay", "walker2d-medium")


def _data(env: str, dataset: str) -> config_dict.ConfigDict:
  """The `data` section of one D4RL task."""
  data = config_dict.ConfigDict()
  data.name = "d4rl"
  data.env = env
  data.dataset = dataset
  data.dir = config_dict.placeholder(str)  # None: $MINRNN_DATA_DIR, then the user cache.
  data.file = f"d4rl/{env}_{dataset.replace('-', '_')}-v2.hdf5"  # [D4RL]
  # [ours] "files": the hdf5 file by the data-directory rule; "tfds": TFDS's prepared RLDS
  # episodes of the same dataset (ArrayRecord; `pip install -e ".[tfds]"`).
  data.source = "files"
  data.tfds_name = f"d4rl_mujoco_{env}/v2-{dataset}"  # [TFDS]
  # None: $TFDS_DATA_DIR, else ~/tensorflow_datasets (TFDS's default).
  data.tfds_dir = config_dict.placeholder(str)
  data.batch_size = 64  # [DT]
  data.context = 20  # [DT] K
  data.return_scale = 1000.0  # [DT]
  data.max_timestep = 1000  # [DT] max_ep_len, [D4RL]
  data.eval_fraction = 0.02  # [ours]
  data.eval_batches = 8  # [ours]
  data.padding = "start"  # [DMamba]
  data.rollouts = config_dict.ConfigDict()
  data.rollouts.target_returns = TARGET_RETURNS[env]  # [DT]
  data.rollouts.num_episodes = 100  # [DMamba], [DT] per target and training seed
  # [paper], [DMamba] the left-padded window of the last K steps, read again at every step;
  # "step" carries the model's state through the episode instead (ours, not the paper's).
  data.rollouts.mode = "window"
  data.rollouts.seed = 1000  # [ours] environment seeds 1000, 1001, ...
  data.rollouts.max_steps = 1000  # [D4RL]
  data.rollouts.progress_bar = True
  return data


def get_config(variant: str = "") -> config_dict.ConfigDict:
  choice = parse_variant(variant, "configs/d4rl.py", task=(TASKS, None),
                         model=(MODELS, "mingru"), size=(("paper", "cpu"), "paper"))
  env, dataset = choice["task"].split("-", 1)
  config = base_config()
  config.seed = 0  # [paper] the table averages seeds 0-4 (experiments/d4rl/table.py).

  config.data = _data(env, dataset)

  config.model = block_defaults()
  config.model.cell = choice["model"]
  config.model.features = 256 if choice["task"] in WIDTH_256 else 128  # [paper]
  config.model.num_layers = 3  # [paper]
  config.model.expansion = 2  # [NR] our choice (the paper's language models use 2)
  config.model.conv_kernel_size = 0  # [paper] minRNN -> MLP
  config.model.mlp_expansion = 4  # [DMamba] n_inner = 4 * embed_dim
  config.model.mlp_gated = False  # [DMamba]
  config.model.dropout = 0.1  # [paper]
  config.model.init = "torch"  # [paper]
  config.model.cell_kwargs.learn_initial_state = True  # [official]
  if choice["model"] == "minlstm":
    config.model.cell_kwargs.forget_bias = 3.0  # [official]

  config.train.num_steps = 100_000  # [paper]
  config.train.learning_rate = 1e-4 if choice["task"] in LEARNING_RATE_1E4 else 1e-3  # [paper]
  config.train.warmup_steps = 10_000  # [paper]
  config.train.end_learning_rate = config.train.learning_rate  # [DMamba] constant after it
  config.train.weight_decay = 1e-4  # [paper]
  config.train.weight_decay_on = "all"  # [DMamba]
  config.train.b1 = 0.9  # [DMamba] PyTorch's AdamW defaults
  config.train.b2 = 0.999  # [DMamba]
  config.train.grad_clip = 0.25  # [DMamba]
  config.train.log_every = 100  # [ours]
  config.train.eval_every = 5000  # [ours]
  config.train.checkpoint_every = 5000  # [ours]
  config.train.keep_checkpoints = 2  # [ours]

  if choice["model"] == "transformer":
    # [DT] the baseline's own settings, in this codebase's pre-norm blocks.
    config.model.expansion = None
    config.model.init = "flax"  # [ours] attention keeps Flax's initialisers.
    config.model.cell_kwargs = config_dict.ConfigDict({"num_heads": 1})  # [DT] n_head
    config.model.features = 128  # [DT] embed_dim
    config.train.learning_rate = config.train.end_learning_rate = 1e-4  # [DT]
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
