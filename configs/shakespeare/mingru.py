"""Character-level Tiny Shakespeare with minGRU: the language-modelling setup of "Were RNNs All
We Needed?" (Feng et al., 2024, arXiv 2410.01201, section 4.3).

Where each setting comes from:
  [paper]  the minRNN paper's language-modelling experiment: 3 layers, width 384, batch 64,
           context 256 (the model size this project's design notes fix for this task);
  [nanoGPT] Karpathy's nanoGPT `config/train_shakespeare_char.py`, the recipe and data split the
           paper's experiment builds on: learning rate, schedule, dropout, Adam betas, steps;
  [Mamba]  the Mamba block's short causal conv (kernel 4) before the recurrence;
  [ours]   choices of this codebase.

Variants: `configs/shakespeare/mingru.py:cpu` is a small model that trains on a 2-core CPU in a
few minutes (not the paper's setting).
"""

from ml_collections import config_dict

from minrnn.run_config import base_config


def get_config(variant: str = "paper") -> config_dict.ConfigDict:
  config = base_config()
  config.seed = 0

  config.data = config_dict.ConfigDict()
  config.data.name = "shakespeare"
  config.data.dir = config_dict.placeholder(str)  # None: $MINRNN_DATA_DIR, then the user cache.
  config.data.download = True
  config.data.batch_size = 64  # [paper], [nanoGPT]
  config.data.seq_len = 256  # [paper], [nanoGPT] block_size
  config.data.eval_batches = config_dict.placeholder(int)  # None: the whole validation split.

  config.model = config_dict.ConfigDict()
  config.model.cell = "mingru"
  config.model.cell_kwargs = config_dict.ConfigDict()
  config.model.features = 384  # [paper]
  config.model.num_layers = 3  # [paper]
  config.model.conv_kernel_size = 4  # [Mamba]
  config.model.mlp_expansion = 4  # [nanoGPT] MLP width 4 * d
  config.model.dropout = 0.2  # [nanoGPT]
  config.model.tie_embeddings = True  # [nanoGPT] ties the embedding and output head
  config.model.implementation = config_dict.placeholder(str)  # None: the platform's fastest.
  config.model.softmax_chunk_size = config_dict.placeholder(int)  # None: full logits.
  config.model.dtype = "float32"  # [ours] "bfloat16" for mixed precision on GPUs.

  config.train.num_steps = 5000  # [nanoGPT] max_iters
  config.train.learning_rate = 1e-3  # [nanoGPT]
  config.train.end_learning_rate = 1e-4  # [nanoGPT] min_lr
  config.train.warmup_steps = 100  # [nanoGPT] warmup_iters
  config.train.weight_decay = 0.1  # [nanoGPT]
  config.train.b1 = 0.9  # [nanoGPT]
  config.train.b2 = 0.99  # [nanoGPT]
  config.train.grad_clip = 1.0  # [nanoGPT]
  config.train.log_every = 50  # [ours]
  config.train.eval_every = 250  # [nanoGPT] eval_interval
  config.train.checkpoint_every = 500  # [ours]

  if variant == "cpu":
    # [ours] A small model for a 2-core CPU: about 2 minutes, loss well below the unigram's 3.3.
    config.data.batch_size = 32
    config.data.seq_len = 64
    config.data.eval_batches = 8
    config.model.features = 64
    config.model.num_layers = 2
    config.model.dropout = 0.0
    config.train.num_steps = 1000
    config.train.warmup_steps = 50
    config.train.learning_rate = 3e-3
    config.train.end_learning_rate = 3e-4
    config.train.log_every = 20
    config.train.eval_every = 250
    config.train.checkpoint_every = 250
  elif variant != "paper":
    raise ValueError(f"Unknown variant {variant!r}; choose 'paper' or 'cpu'.")
  return config
