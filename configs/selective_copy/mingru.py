"""Selective copying with minGRU: the synthetic task of Mamba (Gu & Dao, 2023, section 4.1.1)
as run in "Were RNNs All We Needed?" (Feng et al., 2024, arXiv 2410.01201, section 4.1).

Where each setting comes from:
  [task]   the official selective-copying setup: context length 4096, vocabulary of 16 (blank
           and marker included), 16 tokens to copy, batch 64, learning rate 3e-4, 400k steps;
  [paper]  the minRNN paper's model for it: 3 layers, width 64, MLP expansion factor 6;
  [Mamba]  the Mamba block's short causal conv (kernel 4) before the recurrence;
  [ours]   choices of this codebase.

At 400k steps this is hours on an H100 (about 28 ms a step); `train.stop_at_step` splits it
into chunks that resume. Variants: `:cpu` (context 64, 4 tokens) trains on a 2-core CPU in a
few minutes; `:short` (context 512) is a GPU run of minutes.
"""

from ml_collections import config_dict

from minrnn.run_config import base_config


def get_config(variant: str = "paper") -> config_dict.ConfigDict:
  config = base_config()
  config.seed = 0

  config.data = config_dict.ConfigDict()
  config.data.name = "selective_copy"
  config.data.batch_size = 64  # [task]
  config.data.seq_len = 4096  # [task] length of the context region
  config.data.num_tokens = 16  # [task] tokens to copy
  config.data.vocab_size = 16  # [task] including the blank and the marker
  config.data.eval_batches = 8  # [ours] 512 held-out sequences

  config.model = config_dict.ConfigDict()
  config.model.cell = "mingru"
  config.model.cell_kwargs = config_dict.ConfigDict()
  config.model.features = 64  # [paper]
  config.model.num_layers = 3  # [paper]
  config.model.conv_kernel_size = 4  # [Mamba]
  config.model.mlp_expansion = 6  # [paper] expansion factor
  config.model.dropout = 0.0  # [ours] fresh data every step; nothing to regularise
  config.model.tie_embeddings = True  # [ours]
  config.model.implementation = config_dict.placeholder(str)  # None: the platform's fastest.
  config.model.softmax_chunk_size = config_dict.placeholder(int)  # None: full logits.
  config.model.dtype = "float32"  # [ours] "bfloat16" for mixed precision on GPUs.

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

  if variant == "cpu":
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
  elif variant == "short":
    # [ours] Context 512 instead of 4096: the task at a size a 10-minute GPU run can learn.
    config.data.seq_len = 512
    config.train.num_steps = 20_000
    config.train.learning_rate = 1e-3
    config.train.end_learning_rate = 1e-4
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
  elif variant != "paper":
    raise ValueError(f"Unknown variant {variant!r}; choose 'paper', 'short' or 'cpu'.")
  return config
