"""WikiText-103, word level, with the long-context protocol of SRU++ (Lei, 2021, arXiv
2102.12459): segments of 768 words with the state carried, perplexity over the whole split.

    python -m minrnn.train --config configs/wikitext103.py:srupp --workdir runs/wt103_srupp
    python -m minrnn.train --config configs/wikitext103.py:srupp --workdir runs/wt103_srupp \
        --final_test   # the official test pass of the best checkpoint: final_test.json

Variant `<model>[,<size>]`: model `srupp` (default: SRU++ base, the 148M-parameter model that
reached 18.3 test perplexity, with adaptive input and tied adaptive softmax) or `mingru` (the
residual minRNN language model with a tied full softmax, trained like SRU++); size `paper`
(default), `gpu` (one GPU, minutes) or `cpu` (seconds, for fixtures).

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
           8000 steps on 16 rows. Its final test pass (`config.final_test`, run with
           `--final_test`) uses the best checkpoint, one row, 2560-word segments with the
           previous segment as memory, and every position seeing the same number of keys.
           `--layer_norm` at commit 0fca653 (which published the numbers) puts a LayerNorm in
           the attention only. SRU++ base here has 147.6M parameters, matching the paper's
           148M;
  [ours]   choices of this codebase: the minRNN LM (8 blocks of width 1024, a tied full softmax
           over the 267,735 words scored `model.softmax_chunk_size` positions at a time); one
           global batch over however many devices there are.

Memory: the loss scores only the targets, `model.softmax_chunk_size` positions at a time, so
the `(batch, time, 267735)` log-probabilities (52.6 GB at batch 64 x 768, about three times
that with their gradients in a train step) are never built; the softmax's share of a step is
about 2.3 GB at a chunk of 1024 positions, whatever the batch (XLA's memory analysis on
CPU). Lower the chunk on small GPUs.
"""

from ml_collections import config_dict

from minrnn.training.config import base_config, lm_defaults, parse_variant, srupp_training


def srupp_model(size: str) -> config_dict.ConfigDict:
  """SRU++ base [sru] with the tied adaptive input and softmax [paper]."""
  model = lm_defaults()
  model.cell = "srupp"
  model.features = {"paper": 3072, "gpu": 512, "cpu": 32}[size]  # [sru]
  model.num_layers = {"paper": 10, "gpu": 4, "cpu": 2}[size]  # [sru]
  dropout = 0.0 if size == "cpu" else 0.15  # [sru] dropout and emb_dropout
  model.cell_kwargs.proj_features = {"paper": 768, "gpu": 128, "cpu": 16}[size]  # [sru]
  model.cell_kwargs.attention_every = 1 if size == "paper" else 2  # [sru]
  model.cell_kwargs.memory_length = {"paper": 768, "gpu": 256, "cpu": 16}[size]  # [sru]
  model.cell_kwargs.dropout = dropout  # [sru]
  model.cell_kwargs.attn_dropout = dropout  # [sru]
  model.cell_kwargs.highway_bias = -2.0  # [sru]
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
  model.io_dropout = dropout  # [sru]
  # [paper] Tied adaptive softmax; the cpu size's cutoffs must lie inside the fixtures' small
  # vocabulary (4 clusters need more than 24 words).
  model.adaptive_cutoffs = (8, 16, 24) if size == "cpu" else (19997, 39997, 199997)
  model.div_val = 4  # [paper]
  model.embed_features = {"paper": 1024, "gpu": 256, "cpu": 16}[size]  # [sru] n_e
  # [sru] emb_dropout, inside the adaptive input and softmax (embedding.py: on each cluster's
  # vectors before their projection, and on h P_iᵀ before each cluster's softmax weights).
  model.emb_dropout = dropout
  # [ours] Positions the adaptive softmax scores at once; in cpu, 12 does not divide a batch's
  # 32 positions, so the padded last chunk is exercised.
  model.softmax_chunk_size = 12 if size == "cpu" else 1024
  return model


def residual_model(size: str) -> config_dict.ConfigDict:
  """The minGRU residual LM ([ours] size, [paper] block of arXiv 2410.01201)."""
  model = lm_defaults()
  model.cell = "mingru"
  model.features = {"paper": 1024, "gpu": 512, "cpu": 32}[size]  # [ours]
  model.num_layers = {"paper": 8, "gpu": 4, "cpu": 2}[size]  # [ours]
  model.conv_kernel_size = 4  # [paper]
  model.mlp_expansion = 4  # [paper]
  model.dropout = {"paper": 0.15, "gpu": 0.1, "cpu": 0.0}[size]  # [sru]
  model.tie_embeddings = True  # [ours] a tied full softmax
  # [ours] The loss scores 1024 positions' logits at a time: never the (64, 768, 267735)
  # logits and their gradient (about 53 GB each). In cpu, 12 does not divide the 32
  # positions of a batch, so the padded last chunk is exercised.
  model.softmax_chunk_size = 12 if size == "cpu" else 1024
  return model


def final_test(size: str, srupp: bool) -> config_dict.ConfigDict:
  """The final test pass (`python -m minrnn.train ... --final_test`, `minrnn.training.final_test`)
  [sru]: the best checkpoint scores the validation and test splits with one row, an evaluation
  unroll of 2560 words (README: `--eval_unroll_size 2560`), the previous segment as attention
  memory and the same-length mask (`eval_model`: `set_mask(unroll_size, same_length=True)`)."""
  test = config_dict.ConfigDict()
  test.splits = ("valid", "test")  # [sru] dev_ppl and test_ppl
  test.batch_size = 1  # [sru] corpus.get_iterator('test', 1, eval_unroll_size)
  # [sru] paper; [ours] gpu and cpu: three times their training segment.
  test.seq_len = {"paper": 2560, "gpu": 768, "cpu": 48}[size]
  # [sru] the whole split; [ours] cpu: 4 segments, as its training-time evaluation.
  test.max_batches = 4 if size == "cpu" else config_dict.placeholder(int)
  # [sru] memory = the previous segment; every query sees memory_length + 1 keys.
  test.cell_kwargs = config_dict.ConfigDict(
      {"memory_length": test.seq_len, "same_length": True} if srupp else {})
  return test


def get_config(variant: str = "") -> config_dict.ConfigDict:
  choice = parse_variant(variant, "configs/wikitext103.py",
                         model=(("srupp", "mingru"), "srupp"),
                         size=(("paper", "gpu", "cpu"), "paper"))
  size = choice["size"]
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

  config.model = srupp_model(size) if choice["model"] == "srupp" else residual_model(size)
  config.final_test = final_test(size, srupp=choice["model"] == "srupp")

  srupp_training(config.train, size)  # [sru]
  if size == "gpu":
    # [ours] One GPU, minutes.
    config.data.batch_size = 16
    config.data.seq_len = 256
    config.data.eval_seq_len = 256
    config.data.eval_batches = 50
    config.train.num_steps = 3000
    config.train.warmup_steps = 200
    config.train.learning_rate = 1e-3
    config.train.eval_every = 1000
    config.train.checkpoint_every = 500
    config.train.log_every = 50
  elif size == "cpu":
    # [ours] Seconds on a CPU, on format fixtures.
    config.data.batch_size = 2
    config.data.seq_len = 16
    config.data.eval_batch_size = 2
    config.data.eval_seq_len = 16
    config.data.eval_batches = 4
    config.train.num_steps = 10
    config.train.warmup_steps = 2
    config.train.learning_rate = 3e-3
    config.train.log_every = 5
    config.train.eval_every = 10
    config.train.checkpoint_every = 10
  return config
