"""Character-level Tiny Shakespeare: the language-modelling setup of "Were RNNs All We Needed?"
(Feng et al., 2024, arXiv 2410.01201, section 4.2, Appendix C.1/C.3).

    python -m minrnn.train --config configs/shakespeare.py:mingru --workdir runs/shakespeare

Variant `<model>[,<size>]`: model `mingru` (default), `minlstm`, `gru`, `lstm` (Flax's cells,
the traditional baselines), `mamba` (the state-space baseline, pure JAX) or `transformer` (the
attention baseline: pre-norm blocks, rotary positions, gated MLP); size `paper` (default) or
`cpu`, a reduction: a small model that trains on a 2-core CPU in minutes with the rest of the
protocol unchanged.

The paper's number is the best test loss (nats per character) and its step, the "test" split
being nanoGPT's validation split (the last 10 % of the text): every 25 steps the whole split is
scored, and `final_eval.json` reports the lowest loss and its step under `best`.

Where each setting comes from:
  [paper]  the paper's text for this task (as transcribed in the project's protocol notes):
           3 layers, width 384, dropout 0.2, minRNN expansion 2, blocks Conv4 -> minRNN -> MLP,
           AdamW lr 1e-3, gradient clipping 0.25, 5,000 steps, batch 64, an evaluation every
           25 steps; the Transformer's 6 heads; Mamba with SSM state size ("expansion") 16 and
           block expansion 2;
  [nanoGPT] Karpathy's nanoGPT `config/train_shakespeare_char.py`, the recipe and data split the
           paper's experiment builds on, for what the paper does not state: context 256, the
           warmup and cosine schedule to 1e-4, weight decay 0.1 (on matrices), Adam's beta2
           0.99, the MLP's width 4 * d;
  [TFDS]   TensorFlow Datasets' names of the same data (`data.source = "tfds"`);
  [Mamba]  Mamba's own conv of 4 taps inside its mixer;
  [ours]   choices of this codebase.

The Transformer's depth is not stated for it: the paper gives its models 3 layers, nanoGPT's
recipe has 6. This config uses 3, the paper's statement (nanoGPT's 6-layer model reaches a
validation loss of 1.4697 by its README, well below the paper's 1.547 for its Transformer);
`--config.model.num_layers=6` runs nanoGPT's.
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
  config.data.batch_size = 64  # [paper]
  config.data.seq_len = 256  # [nanoGPT] block_size (the paper's: not stated)
  config.data.eval_batches = config_dict.placeholder(int)  # None: the whole validation split.

  config.model = lm_defaults()
  config.model.cell = choice["model"]
  config.model.features = 384  # [paper]
  config.model.num_layers = 3  # [paper]
  config.model.conv_kernel_size = 4  # [paper] Conv4
  config.model.mlp_expansion = 4  # [nanoGPT] MLP width 4 * d (the paper's: not stated)
  config.model.dropout = 0.2  # [paper]
  config.model.tie_embeddings = True  # [nanoGPT] ties the embedding and output head

  config.train.num_steps = 5000  # [paper]
  config.train.learning_rate = 1e-3  # [paper]
  config.train.end_learning_rate = 1e-4  # [nanoGPT] min_lr
  config.train.warmup_steps = 100  # [nanoGPT] warmup_iters
  config.train.weight_decay = 0.1  # [nanoGPT]
  config.train.b1 = 0.9  # [nanoGPT]
  config.train.b2 = 0.99  # [nanoGPT]
  config.train.grad_clip = 0.25  # [paper]
  config.train.eval_every = 25  # [paper]
  config.train.best_metric = "loss"  # [paper] the reported number: the best test loss
  config.train.log_every = 25  # [ours]
  config.train.checkpoint_every = 500  # [ours]

  if choice["model"] in ("mingru", "minlstm"):
    config.model.expansion = 2  # [paper] the minRNN layer is 2 * d wide, then projected to d

  if cpu:
    # [ours] A reduction for a 2-core CPU: width 64, 2 layers, batch 32, context 64, 1,000
    # steps, no dropout, learning rate 3e-3, the validation split's first 8 batches; the blocks
    # and the rest of the protocol as above.
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

  if choice["model"] == "mamba":
    config.model.conv_kernel_size = 0  # The mixer convolves after its expansion.
    config.model.cell_kwargs.state_size = 16  # [paper] SSM expansion 16
    config.model.cell_kwargs.expand = 2  # [paper] block expansion 2
    config.model.cell_kwargs.conv_kernel_size = 4  # [Mamba]
  elif choice["model"] == "transformer":
    config.model.conv_kernel_size = 0  # Not used: attention sees the whole context.
    config.model.num_layers = 2 if cpu else 3  # [paper] 3 layers; nanoGPT: 6 (see above)
    config.model.cell_kwargs.num_heads = 4 if cpu else 6  # [paper] (cpu: [ours])
  return config
