"""Character-level Tiny Shakespeare: the language-modelling setup of "Were RNNs All We Needed?"
(Feng et al., 2024, arXiv 2410.01201, section 4.3).

    python -m minrnn.train --config configs/shakespeare.py:mingru --workdir runs/shakespeare

Variant `<model>[,<size>]`: model `mingru` (default), `minlstm`, `gru`, `lstm` (Flax's cells,
the traditional baselines), `mamba` (the state-space baseline, pure JAX) or `transformer` (the
attention baseline: pre-norm blocks, rotary positions, gated MLP); size `paper` (default) or
`cpu`, a small model that trains on a 2-core CPU in a few minutes (not the paper's setting).

Where each setting comes from:
  [paper]  the minRNN paper's language-modelling experiment: 3 layers, width 384, batch 64,
           context 256 (the model size this project's design notes fix for this task);
  [nanoGPT] Karpathy's nanoGPT `config/train_shakespeare_char.py`, the recipe and data split the
           paper's experiment builds on: learning rate, schedule, dropout, Adam betas, steps,
           and the Transformer's 6 layers and 6 heads;
  [TFDS]   TensorFlow Datasets' names of the same data (`data.source = "tfds"`);
  [Mamba]  the Mamba block's short causal conv (kernel 4) before the recurrence; Mamba's state
           size 16, expansion 2 and own conv of 4 taps;
  [ours]   choices of this codebase.
"""

from ml_collections import config_dict

from minrnn.training.config import base_config, lm_defaults, parse_variant

MODELS = ("mingru", "minlstm", "gru", "lstm", "mamba", "transformer")
SIZES = ("paper", "cpu")


def get_config(variant: str = "") -> config_dict.ConfigDict:
  choice = parse_variant(variant, "configs/shakespeare.py", model=(MODELS, "mingru"),
                         size=(SIZES, "paper"))
  cpu = choice["size"] == "cpu"
  config = base_config()
  config.seed = 0

  config.data = config_dict.ConfigDict()
  config.data.name = "shakespeare"
  config.data.dir = config_dict.placeholder(str)  # None: $MINRNN_DATA_DIR, then the user cache.
  config.data.download = True
  # [ours] "files": input.txt by the data-directory rule; "tfds": TFDS's prepared
  # `tiny_shakespeare` (ArrayRecord; `pip install -e ".[tfds]"`), same text.
  config.data.source = "files"
  # [paper] nanoGPT's first 90% / last 10%; "tfds": TFDS's train / validation (source "tfds").
  config.data.split = "nanogpt"
  config.data.tfds_name = "tiny_shakespeare"  # [TFDS]
  # None: $TFDS_DATA_DIR, else ~/tensorflow_datasets (TFDS's default).
  config.data.tfds_dir = config_dict.placeholder(str)
  config.data.batch_size = 64  # [paper], [nanoGPT]
  config.data.seq_len = 256  # [paper], [nanoGPT] block_size
  config.data.eval_batches = config_dict.placeholder(int)  # None: the whole validation split.

  config.model = lm_defaults()
  config.model.cell = choice["model"]
  config.model.features = 384  # [paper]
  config.model.num_layers = 3  # [paper]
  config.model.conv_kernel_size = 4  # [Mamba]
  config.model.mlp_expansion = 4  # [nanoGPT] MLP width 4 * d
  config.model.dropout = 0.2  # [nanoGPT]
  config.model.tie_embeddings = True  # [nanoGPT] ties the embedding and output head

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

  if cpu:
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

  if choice["model"] == "mamba":
    config.model.conv_kernel_size = 0  # The mixer convolves after its expansion.
    config.model.cell_kwargs.state_size = 16  # [Mamba]
    config.model.cell_kwargs.expand = 2  # [Mamba]
    config.model.cell_kwargs.conv_kernel_size = 4  # [Mamba]
  elif choice["model"] == "transformer":
    config.model.conv_kernel_size = 0  # Not used: attention sees the whole context.
    config.model.num_layers = 2 if cpu else 6  # [nanoGPT] n_layer (cpu: [ours])
    config.model.cell_kwargs.num_heads = 4 if cpu else 6  # [nanoGPT] n_head (cpu: [ours])
  return config
