"""SRU++ base on WikiText-103 (Lei, 2021, arXiv 2102.12459): the 148M-parameter model that
reached 18.3 test perplexity, with adaptive input and tied adaptive softmax.

Where each setting comes from:
  [paper]  the SRU++ paper: word-level WikiText-103, adaptive input/softmax with cutoffs
           19997 / 39997 / 199997 and div_val 4 (as in Baevski & Auli and Transformer-XL),
           perplexity over the whole test split with the state carried;
  [sru]    the official `sru` SRU++ LM scripts (enwik8 and lm1b versions): width 3072 with
           attention width 768 (enwik8 base), 10 layers, attention in every layer, highway bias
           -2, adaptive embedding width 1024 (`n_e`), lr 3e-4 with 16k warmup and cosine decay,
           weight decay 0.1, clipping 1.0;
  [unverified] values we could not check against the official WikiText-103 script here
           (segment length, batch, dropout, steps): they follow Transformer-XL-style settings;
           check them before quoting numbers. This config gives 147.6M parameters, matching the
           paper's 148M.
  [ours]   choices of this codebase (AdamW instead of RAdam, one global batch).

Memory: the loss scores only the targets, `model.softmax_chunk_size` positions at a time, so
the `(batch, time, 267735)` log-probabilities (17.5 GB at batch 32 x 512, about three times
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
  config.data.batch_size = 32  # [unverified]
  config.data.seq_len = 512  # [unverified]
  config.data.eval_batch_size = 8  # [unverified]
  config.data.eval_seq_len = 512  # [unverified]
  config.data.eval_batches = config_dict.placeholder(int)  # None: the whole split.

  config.model = config_dict.ConfigDict()
  config.model.cell = "srupp"
  config.model.features = 3072  # [sru]
  config.model.num_layers = 10  # [sru]
  config.model.proj_features = 768  # [sru]
  config.model.attention_every = 1  # [sru]
  config.model.memory_length = 512  # [unverified] the previous segment.
  config.model.dropout = 0.1  # [unverified]
  config.model.attn_dropout = 0.1  # [unverified]
  config.model.highway_bias = -2.0  # [sru]
  config.model.output = "tied"  # [paper] tied adaptive softmax (the adaptive module ties).
  config.model.adaptive_cutoffs = (19997, 39997, 199997)  # [paper]
  config.model.div_val = 4  # [paper]
  config.model.embed_features = 1024  # [sru] n_e
  config.model.softmax_chunk_size = 1024  # [ours] positions the adaptive softmax scores at once.
  config.model.implementation = config_dict.placeholder(str)
  config.model.dtype = "float32"

  config.train.num_steps = 400_000  # [unverified]
  config.train.learning_rate = 3e-4  # [sru]
  config.train.end_learning_rate = 0.0  # [sru] cosine to 0
  config.train.warmup_steps = 16_000  # [sru]
  config.train.weight_decay = 0.1  # [sru]
  config.train.b1 = 0.9  # [ours]
  config.train.b2 = 0.999
  config.train.grad_clip = 1.0  # [sru]
  config.train.log_every = 200
  config.train.eval_every = 8000  # [sru] eval_period
  config.train.checkpoint_every = 2000  # [ours]

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
