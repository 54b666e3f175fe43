"""SRU++ base on enwik8 (Lei, 2021, "When Attention Meets Fast Recurrence", arXiv 2102.12459):
the 108M-parameter model that reached 0.974 bits per character on the test split.

Where each setting comes from:
  [sru]    the official `sru` repository's `experiments/srupp_experiments/train_enwik8.py`
           defaults: width 3072, attention width 768, 10 layers, attention in every layer,
           dropout 0.22 (also on attention), highway bias -2, segments of 1024 bytes with the
           previous segment as attention memory, RAdam with lr 3e-4, 16k warmup steps and cosine
           decay over 400k steps, weight decay 0.1 on every parameter, gradient clipping 1.0,
           untied output layer, 4 rows per GPU on 8 GPUs, and (from its README's commands)
           `--layer_norm`; evaluation with the state carried over the whole split (the final
           test pass of [sru] uses one row and a 3072-byte attention window);
  [paper]  the SRU++ paper: byte-level enwik8, 90M/5M/5M split, bits per character on test;
  [ours]   choices of this codebase. minrnn trains one global batch of the same size (over
           however many devices `config.mesh` has).

Variants: `:paper` (default), `:gpu` (a 4-layer d=512 model for one GPU in minutes), `:cpu`
(tiny; seconds on a CPU, for smoke tests and format fixtures). The variants are not the paper's
setting and their numbers are not comparable with it.
"""

from ml_collections import config_dict

from minrnn.run_config import base_config


def get_config(variant: str = "paper") -> config_dict.ConfigDict:
  config = base_config()
  config.seed = 1234  # [sru]

  config.data = config_dict.ConfigDict()
  config.data.name = "enwik8"
  config.data.dir = config_dict.placeholder(str)  # None: $MINRNN_DATA_DIR, then the user cache.
  config.data.download = True
  config.data.verify_checksum = True  # The real 100,000,000-byte file; False for other files.
  config.data.cache_dir = config_dict.placeholder(str)  # None: next to the data if writable.
  config.data.batch_size = 32  # [sru] 4 rows per GPU times 8 GPUs.
  config.data.seq_len = 1024  # [sru] unroll_size
  config.data.eval_batch_size = 16  # [sru] eval_batch_size (its final test pass uses 1 row).
  config.data.eval_seq_len = 1024  # [sru] eval_unroll_size = unroll_size
  config.data.eval_batches = config_dict.placeholder(int)  # None: the whole split.

  config.model = config_dict.ConfigDict()
  config.model.cell = "srupp"
  config.model.features = 3072  # [sru] n_d
  config.model.num_layers = 10  # [sru] depth
  config.model.proj_features = 768  # [sru] n_proj
  config.model.attention_every = 1  # [sru] attn_every_n_layers
  config.model.memory_length = 1024  # [sru] the previous segment is the attention memory.
  config.model.dropout = 0.22  # [sru]
  config.model.attn_dropout = 0.22  # [sru]
  config.model.highway_bias = -2.0  # [sru] bias
  config.model.layer_norm = True  # [sru] --layer_norm: each layer normalises its input.
  config.model.output = "linear"  # [sru] nn.Linear output layer, not tied.
  config.model.adaptive_cutoffs = config_dict.placeholder(tuple)  # Byte level: no clusters.
  config.model.div_val = 4
  config.model.embed_features = config_dict.placeholder(int)
  config.model.softmax_chunk_size = 1024  # [ours] adaptive softmax only (unused here).
  config.model.implementation = config_dict.placeholder(str)  # None: Pallas on GPU.
  config.model.dtype = "float32"  # [ours] "bfloat16" for mixed precision ([sru] has --fp16).

  config.train.num_steps = 400_000  # [sru] max_iter
  config.train.learning_rate = 3e-4  # [sru] lr
  config.train.end_learning_rate = 0.0  # [sru] CosineAnnealingLR decays to 0.
  config.train.warmup_steps = 16_000  # [sru]
  config.train.weight_decay = 0.1  # [sru]
  config.train.optimizer = "radam"  # [sru]
  config.train.weight_decay_on = "all"  # [sru] RAdam decays every parameter.
  config.train.b1 = 0.9  # [sru] RAdam defaults
  config.train.b2 = 0.999  # [sru]
  config.train.grad_clip = 1.0  # [sru] clip_grad
  config.train.log_every = 200  # [sru] log_period
  config.train.eval_every = 8000  # [sru] eval_period
  config.train.checkpoint_every = 2000  # [ours]

  if variant in ("gpu", "cpu"):
    # [ours] RAdam's rectification keeps its first few hundred steps tiny (a built-in warmup
    # for 400k-step runs); the short variants train with AdamW on matrices.
    config.train.optimizer = "adamw"
    config.train.weight_decay_on = "matrices"
  if variant == "gpu":
    # [ours] One GPU, minutes: 4 layers of width 512 with attention in layers 2 and 4.
    config.data.batch_size = 16
    config.data.seq_len = 512
    config.data.eval_seq_len = 512
    config.data.eval_batches = 50
    config.model.features = 512
    config.model.num_layers = 4
    config.model.proj_features = 128
    config.model.attention_every = 2
    config.model.memory_length = 512
    config.model.dropout = 0.1
    config.model.attn_dropout = 0.1
    config.train.num_steps = 3000
    config.train.warmup_steps = 200
    config.train.learning_rate = 1e-3
    config.train.eval_every = 1000
    config.train.checkpoint_every = 500
    config.train.log_every = 50
  elif variant == "cpu":
    # [ours] Seconds on a CPU: a smoke test of the whole pipeline, also on format fixtures.
    config.data.batch_size = 4
    config.data.seq_len = 32
    config.data.eval_batch_size = 4
    config.data.eval_seq_len = 32
    config.data.eval_batches = 4
    config.model.features = 32
    config.model.num_layers = 2
    config.model.proj_features = 16
    config.model.attention_every = 2
    config.model.memory_length = 32
    config.model.dropout = 0.0
    config.model.attn_dropout = 0.0
    config.train.num_steps = 20
    config.train.warmup_steps = 2
    config.train.learning_rate = 3e-3
    config.train.log_every = 5
    config.train.eval_every = 10
    config.train.checkpoint_every = 10
  elif variant != "paper":
    raise ValueError(f"Unknown variant {variant!r}; choose 'paper', 'gpu' or 'cpu'.")
  return config
