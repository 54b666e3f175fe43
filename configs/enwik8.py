"""enwik8, byte level, with the long-context protocol of SRU++ (Lei, 2021, "When Attention Meets
Fast Recurrence", arXiv 2102.12459): segments of 1024 bytes, the model state (recurrent states,
attention memory) carried from one segment to the next, evaluation over the whole split with the
state carried, bits per character on the 90M/5M/5M split.

    python -m minrnn.train --config configs/enwik8.py:srupp --workdir runs/enwik8_srupp
    python -m minrnn.train --config configs/enwik8.py:srupp --workdir runs/enwik8_srupp \
        --final_test   # the official test pass of the best checkpoint: final_test.json

Variant `<model>[,<size>]`: model `srupp` (default: SRU++ base, the 108M-parameter model that
reached 0.974 test bits per character), `mingru` or `minlstm` (the residual minRNN language
model through the same path, with SRU++'s data, optimizer and schedule, so the two are trained
alike); size `paper` (default), `gpu` (a 4-layer d=512 model for one GPU in minutes) or `cpu`
(tiny; seconds on a CPU, for smoke tests and format fixtures). The gpu and cpu sizes are not the
paper's setting and their numbers are not comparable with it.

Where each setting comes from:
  [sru]    the official `sru` repository's `experiments/srupp_experiments/train_enwik8.py`
           defaults: width 3072, attention width 768, 10 layers, attention in every layer,
           dropout 0.22 (also on attention), highway bias -2, segments of 1024 bytes with the
           previous segment as attention memory, RAdam with lr 3e-4, 16k warmup steps and cosine
           decay over 400k steps, weight decay 0.1 on every parameter, gradient clipping 1.0,
           untied output layer, 4 rows per GPU on 8 GPUs, and (from its README's commands)
           `--layer_norm` (at commit 0fca653, which published the numbers: a LayerNorm in the
           attention only); evaluation with the state carried over the whole split; the final
           test pass (`config.final_test`, run with `--final_test`): one row, 3072-byte
           segments, the same-length attention mask, on the best checkpoint;
  [paper]  the SRU++ paper: byte-level enwik8, 90M/5M/5M split, bits per character on test;
           for mingru/minlstm, the residual block of "Were RNNs All We Needed?" (arXiv
           2410.01201), which has no enwik8 experiment;
  [ours]   choices of this codebase: the minRNN LM's size (8 blocks of width 1024 with a 4x
           gated MLP, about 118M parameters, close to SRU++ base's 108M); one global batch of the
           official size over however many devices `config.mesh` has.
"""

from ml_collections import config_dict

from minrnn.training.config import base_config, lm_defaults, parse_variant, srupp_training


def srupp_model(size: str) -> config_dict.ConfigDict:
  """SRU++ base [sru]: SRU++ layers stacked without pre-norm or residual (each has its own
  highway), embedding and output dropout, an untied linear head with a bias."""
  model = lm_defaults()
  model.cell = "srupp"
  model.features = {"paper": 3072, "gpu": 512, "cpu": 32}[size]  # [sru] n_d
  model.num_layers = {"paper": 10, "gpu": 4, "cpu": 2}[size]  # [sru] depth
  dropout = {"paper": 0.22, "gpu": 0.1, "cpu": 0.0}[size]  # [sru]
  model.cell_kwargs.proj_features = {"paper": 768, "gpu": 128, "cpu": 16}[size]  # [sru] n_proj
  model.cell_kwargs.attention_every = 1 if size == "paper" else 2  # [sru] attn_every_n_layers
  # [sru] The previous segment is the attention memory.
  model.cell_kwargs.memory_length = {"paper": 1024, "gpu": 512, "cpu": 32}[size]
  model.cell_kwargs.dropout = dropout  # [sru]
  model.cell_kwargs.attn_dropout = dropout  # [sru]
  model.cell_kwargs.highway_bias = -2.0  # [sru] bias
  # [sru] --layer_norm at the commit that published the numbers (0fca653, sru/modules.py):
  # a LayerNorm inside each attention / projection (post-norm of Q + α·A), and every
  # SRUppCell built with layer_norm=False: no per-layer input LayerNorm.
  model.cell_kwargs.attn_layer_norm = True
  model.cell_kwargs.layer_norm = False
  model.conv_kernel_size = 0  # [sru] SRU++ layers only.
  model.mlp_expansion = 0  # [sru]
  model.pre_norm = False  # [sru]
  model.residual = False  # [sru] the layers' own highway connection.
  model.final_norm = False  # [sru]
  model.io_dropout = dropout  # [sru] dropout on the embeddings and before the output layer.
  model.tie_embeddings = False  # [sru] nn.Linear output layer, not tied.
  model.head_bias = True  # [sru]
  return model


def residual_model(cell: str, size: str) -> config_dict.ConfigDict:
  """The minRNN residual LM at the size's width and depth ([ours], [paper] block)."""
  model = lm_defaults()
  model.cell = cell
  model.features = {"paper": 1024, "gpu": 512, "cpu": 32}[size]  # [ours]
  model.num_layers = {"paper": 8, "gpu": 4, "cpu": 2}[size]  # [ours]
  model.conv_kernel_size = 4  # [paper] (the Mamba-style conv of minrnn's block)
  model.mlp_expansion = 4  # [paper]
  model.dropout = {"paper": 0.22, "gpu": 0.1, "cpu": 0.0}[size]  # [sru]
  model.tie_embeddings = False  # [sru] untied output layer
  return model


def final_test(size: str, srupp: bool) -> config_dict.ConfigDict:
  """The final test pass (`python -m minrnn.train ... --final_test`, `minrnn.training.final_test`)
  [sru]: after training, the best checkpoint scores the validation and test splits with one row,
  an evaluation unroll of 3072 bytes (README: `--eval_unroll_size 3072`), the previous segment
  as attention memory and the same-length mask (`eval_model`: `set_mask(unroll_size,
  same_length=True)`)."""
  test = config_dict.ConfigDict()
  test.splits = ("valid", "test")  # [sru] dev_bpc and test_bpc
  test.batch_size = 1  # [sru] create_batches(test_, 1)
  # [sru] paper; [ours] gpu and cpu: three times their training segment, as 3072 = 3 x 1024.
  test.seq_len = {"paper": 3072, "gpu": 1536, "cpu": 96}[size]
  # [sru] the whole split; [ours] cpu: 4 segments, as its training-time evaluation.
  test.max_batches = 4 if size == "cpu" else config_dict.placeholder(int)
  # [sru] memory = the previous segment; every query sees memory_length + 1 keys.
  test.cell_kwargs = config_dict.ConfigDict(
      {"memory_length": test.seq_len, "same_length": True} if srupp else {})
  return test


def get_config(variant: str = "") -> config_dict.ConfigDict:
  choice = parse_variant(variant, "configs/enwik8.py",
                         model=(("srupp", "mingru", "minlstm"), "srupp"),
                         size=(("paper", "gpu", "cpu"), "paper"))
  size = choice["size"]
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

  config.model = (srupp_model(size) if choice["model"] == "srupp"
                  else residual_model(choice["model"], size))
  config.final_test = final_test(size, srupp=choice["model"] == "srupp")

  srupp_training(config.train, size)  # [sru]
  if size == "gpu":
    # [ours] One GPU, minutes: 4 layers of width 512 with attention in layers 2 and 4.
    config.data.batch_size = 16
    config.data.seq_len = 512
    config.data.eval_seq_len = 512
    config.data.eval_batches = 50
    config.train.num_steps = 3000
    config.train.warmup_steps = 200
    config.train.learning_rate = 1e-3
    config.train.eval_every = 1000
    config.train.checkpoint_every = 500
    config.train.log_every = 50
  elif size == "cpu":
    # [ours] Seconds on a CPU: a smoke test of the whole pipeline, also on format fixtures.
    config.data.batch_size = 4
    config.data.seq_len = 32
    config.data.eval_batch_size = 4
    config.data.eval_seq_len = 32
    config.data.eval_batches = 4
    config.train.num_steps = 20
    config.train.warmup_steps = 2
    config.train.learning_rate = 3e-3
    config.train.log_every = 5
    config.train.eval_every = 10
    config.train.checkpoint_every = 10
  return config
