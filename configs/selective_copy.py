"""Selective copying: the synthetic task of Mamba (Gu & Dao, 2023, section 4.1.1) as run in "Were
RNNs All We Needed?" (Feng et al., 2024, arXiv 2410.01201, section 4.1).

    python -m minrnn.train --config configs/selective_copy.py:mingru,cpu --workdir runs/copy

Variant `<model>[,<size>]`: model `mingru` (default) or `minlstm`; size `paper` (default;
hours on an H100, about 28 ms a step: `train.stop_at_step` splits it into chunks that resume),
`short` (context 512, a GPU run of minutes) or `cpu` (context 64 and 4 tokens: trains on a
2-core CPU in a minute or two, with no download; the quickstart).

Where each setting comes from:
  [task]   the official selective-copying setup: context length 4096, vocabulary of 16 (blank
           and marker included), 16 tokens to copy, batch 64, learning rate 3e-4, 400k steps;
  [paper]  the minRNN paper's model for it: 3 layers, width 64, MLP expansion factor 6;
  [Mamba]  the Mamba block's short causal conv (kernel 4) before the recurrence;
  [ours]   choices of this codebase.
"""

from ml_collections import config_dict

from minrnn.training.config import base_config, lm_defaults, parse_variant


def get_config(variant: str = "") -> config_dict.ConfigDict:
  choice = parse_variant(variant, "configs/selective_copy.py",
                         model=(("mingru", "minlstm"), "mingru"),
                         size=(("paper", "short", "cpu"), "paper"))
  config = base_config()
  config.seed = 0

  config.data = config_dict.ConfigDict()
  config.data.name = "selective_copy"
  config.data.batch_size = 64  # [task]
  config.data.seq_len = 4096  # [task] length of the context region
  config.data.num_tokens = 16  # [task] tokens to copy
  config.data.vocab_size = 16  # [task] including the blank and the marker
  config.data.eval_batches = 8  # [ours] 512 held-out sequences

  config.model = lm_defaults()
  config.model.cell = choice["model"]
  config.model.features = 64  # [paper]
  config.model.num_layers = 3  # [paper]
  config.model.conv_kernel_size = 4  # [Mamba]
  config.model.mlp_expansion = 6  # [paper] expansion factor
  config.model.dropout = 0.0  # [ours] fresh data every step; nothing to regularise

  config.train.num_steps = 400_000  # [task]
  config.train.learning_rate = 3e-4  # [task]
  config.train.end_learning_rate = 3e-5  # [ours]
  config.train.warmup_steps = 1000  # [ours]
  config.train.weight_decay = 0.1  # [ours]
  config.train.b1 = 0.9  # [ours]
  config.train.b2 = 0.999  # [ours]
  config.train.grad_clip = 1.0  # [ours]
  config.train.log_every = 100  # [ours]
  config.train.eval_every = 2000  # [ours]
  config.train.checkpoint_every = 2000  # [ours]

  if choice["size"] == "cpu":
    # [ours] A short context and few tokens: learnable on a 2-core CPU in minutes.
    config.data.batch_size = 32
    config.data.seq_len = 64
    config.data.num_tokens = 4
    config.data.eval_batches = 4
    config.model.features = 32
    config.model.num_layers = 2
    config.model.mlp_expansion = 4
    config.train.num_steps = 3000
    config.train.learning_rate = 3e-3
    config.train.end_learning_rate = 3e-4
    config.train.warmup_steps = 50
    config.train.log_every = 25
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
  elif choice["size"] == "short":
    # [ours] Context 512 instead of 4096: the task at a size a 10-minute GPU run can learn.
    config.data.seq_len = 512
    config.train.num_steps = 20_000
    config.train.learning_rate = 1e-3
    config.train.end_learning_rate = 1e-4
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
  return config
