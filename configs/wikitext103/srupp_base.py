"""SRU++ base on WikiText-103 (Lei, 2021, arXiv 2102.12459): the 148M-parameter model that
reached 18.3 test perplexity, with adaptive input and tied adaptive softmax.

Where each setting comes from:
  [paper]  the SRU++ paper: word-level WikiText-103, adaptive input/softmax with cutoffs
           19997 / 39997 / 199997 and div_val 4 (as in Baevski & Auli and Transformer-XL),
           perplexity over the whole test split with the state carried;
  [sru]    the official `sru` repository's `experiments/srupp_experiments/train_wt103.py`
           defaults (branch 3.0.0-dev) and its README's base-model command: width 3072,
           attention width 768, adaptive embedding width 1024 (`n_e`), 10 layers with attention
           in every layer, `--layer_norm`, dropout 0.15 (also on attention and the embeddings),
           highway bias -2, segments of 768 words with the previous segment as attention memory,
           8 rows per GPU on 8 GPUs, RAdam with lr 3e-4, 16k warmup steps and cosine decay to 0
           over 400k steps, weight decay 0.1 on every parameter, clipping 1.0, evaluation every
           8000 steps on 16 rows. Its final test pass uses one row and a 2560-word attention
           window with every position seeing the same number of keys; minrnn's evaluation keeps
           the training segments' memory (the previous segment). This config gives 147.6M
           parameters, matching the paper's 148M;
  [ours]   choices of this codebase (one global batch over however many devices there are).

Memory: the loss scores only the targets, `model.softmax_chunk_size` positions at a time, so
the `(batch, time, 267735)` log-probabilities (52.6 GB at batch 64 x 768, about three times
that with their gradients in a train step) are never built; the softmax's share of a step is
about 2.3 GB at a chunk of 1024 positions, whatever the batch (XLA's memory analysis on
CPU). Lower the chunk on small GPUs.

Variants: `:paper` (default), `:gpu` (one GPU, minutes), `:cpu` (seconds, for fixtures).
"""

from ml_collections import config_dict

from minrnn.run_config import base_config


def get_config(variant: str = "paper") -> config_dict.ConfigDict:
  config = base_config()
  config.seed = 1234  # [sru]

  config.data = config_dict.ConfigDict()
  config.data.name = "wikitext103"
  config.data.dir = config_dict.placeholder(str)  # None: $MINRNN_DATA_DIR, then the user cache.
  config.data.download = False  # Not downloadable by minrnn: the error says where to get it.
  config.data.cache_dir = config_dict.placeholder(str)  # None: next to the data if writable.
  config.data.batch_size = 64  # [sru] 8 rows per GPU times 8 GPUs.
  config.data.seq_len = 768  # [sru] unroll_size
  config.data.eval_batch_size = 16  # [sru] eval_batch_size
  config.data.eval_seq_len = 768  # [sru] eval_unroll_size = unroll_size during training
  config.data.eval_batches = config_dict.placeholder(int)  # None: the whole split.

  config.model = config_dict.ConfigDict()
  config.model.cell = "srupp"
  config.model.features = 3072  # [sru]
  config.model.num_layers = 10  # [sru]
  config.model.proj_features = 768  # [sru]
  config.model.attention_every = 1  # [sru]
  config.model.memory_length = 768  # [sru] the previous segment.
  config.model.dropout = 0.15  # [sru] dropout and emb_dropout
  config.model.attn_dropout = 0.15  # [sru]
  config.model.highway_bias = -2.0  # [sru]
  config.model.layer_norm = True  # [sru] --layer_norm: each layer normalises its input.
  config.model.output = "tied"  # [paper] tied adaptive softmax (the adaptive module ties).
  config.model.adaptive_cutoffs = (19997, 39997, 199997)  # [paper]
  config.model.div_val = 4  # [paper]
  config.model.embed_features = 1024  # [sru] n_e
  config.model.softmax_chunk_size = 1024  # [ours] positions the adaptive softmax scores at once.
  config.model.implementation = config_dict.placeholder(str)
  config.model.dtype = "float32"

  config.train.num_steps = 400_000  # [sru] max_iter
  config.train.learning_rate = 3e-4  # [sru]
  config.train.end_learning_rate = 0.0  # [sru] cosine to 0
  config.train.warmup_steps = 16_000  # [sru]
  config.train.weight_decay = 0.1  # [sru]
  config.train.optimizer = "radam"  # [sru]
  config.train.weight_decay_on = "all"  # [sru] RAdam decays every parameter.
  config.train.b1 = 0.9  # [sru] RAdam defaults
  config.train.b2 = 0.999  # [sru]
  config.train.grad_clip = 1.0  # [sru]
  config.train.log_every = 200
  config.train.eval_every = 8000  # [sru] eval_period
  config.train.checkpoint_every = 2000  # [ours]

  if variant in ("gpu", "cpu"):
    # [ours] RAdam's rectification keeps its first few hundred steps tiny (a built-in warmup
    # for 400k-step runs); the short variants train with AdamW on matrices.
    config.train.optimizer = "adamw"
    config.train.weight_decay_on = "matrices"
  if variant == "gpu":
    # [ours] One GPU, minutes.
    config.data.batch_size = 16
    config.data.seq_len = 256
    config.data.eval_seq_len = 256
    config.data.eval_batches = 50
    config.model.features = 512
    config.model.num_layers = 4
    config.model.proj_features = 128
    config.model.attention_every = 2
    config.model.memory_length = 256
    config.model.embed_features = 256
    config.train.num_steps = 3000
    config.train.warmup_steps = 200
    config.train.learning_rate = 1e-3
    config.train.eval_every = 1000
    config.train.checkpoint_every = 500
    config.train.log_every = 50
  elif variant == "cpu":
    # [ours] Seconds on a CPU; the cutoffs must lie inside the (small) vocabulary, so the
    # fixture's vocabulary sets them: 4 clusters need more than 24 words.
    config.data.batch_size = 2
    config.data.seq_len = 16
    config.data.eval_batch_size = 2
    config.data.eval_seq_len = 16
    config.data.eval_batches = 4
    config.model.features = 32
    config.model.num_layers = 2
    config.model.proj_features = 16
    config.model.attention_every = 2
    config.model.memory_length = 16
    config.model.dropout = 0.0
    config.model.attn_dropout = 0.0
    config.model.adaptive_cutoffs = (8, 16, 24)
    config.model.embed_features = 16
    config.model.softmax_chunk_size = 12  # Not a divisor of the 32 positions: chunks are tested.
    config.train.num_steps = 10
    config.train.warmup_steps = 2
    config.train.learning_rate = 3e-3
    config.train.log_every = 5
    config.train.eval_every = 10
    config.train.checkpoint_every = 10
  elif variant != "paper":
    raise ValueError(f"Unknown variant {variant!r}; choose 'paper', 'gpu' or 'cpu'.")
  return config
