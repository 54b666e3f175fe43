"""Formal-language length generalisation: train on strings of length 1-40, test on 40-256
(later versions of "Were RNNs All We Needed?", arXiv 2410.01201, Tables 4-5, following the
xLSTM paper's protocol; tasks from Delétang et al., 2023 and xLSTM, generated as the official
minRNNs code does: `minrnn.data.formal_languages`).

    python -m minrnn.train --config configs/formal_languages.py:mingru \
        --config.data.task=majority --workdir runs/majority

Variant `<model>[,<size>]`: model `mingru` (default), `minlstm` or `transformer` (a causal
Transformer with rotary positions, which need no maximum length); size `paper` (default: the
paper's protocol, 500k steps of batch 256) or `cpu` (a small model and budget: about a minute a
task on a 2-core CPU; not the paper's). Pick the task with `--config.data.task=parity_check`
(or even_pairs, cycle_nav, bucket_sort, majority, majority_count, missing_duplicate). The
paper reports the mean over 3 seeds (`experiments/formal_languages/run.py --seeds 0,1,2`).

Where each setting comes from:
  [paper]    the paper's appendix (C.1, C.3): 2 blocks of Conv4 -> minRNN, batch 256, AdamW
             with learning rate 3e-4 and weight decay 0.01, 500k steps, training lengths 1-40,
             test lengths 40-256; PyTorch's default initialisation; minLSTM's normalised gates;
  [official] the paper's code, `BorealisAI/minRNNs`: `models/model.py` (the conv on its own
             residual branch before the norm, an untied head without bias after a final norm),
             `models/minRNNs.py` (minLSTM's forget-gate bias offset, 3 in its default config;
             a learned initial state, on by default), `main.py` (a constant learning rate,
             PyTorch's AdamW betas, no weight decay on the cells' input projections);
  [NR]       not in the text or code we could read (the width, the minRNN expansion, the
             gradient clip): our choice, named here;
  [ours]     choices of this codebase.
"""

from ml_collections import config_dict

from minrnn.training.config import base_config, lm_defaults, parse_variant


def get_config(variant: str = "") -> config_dict.ConfigDict:
  choice = parse_variant(variant, "configs/formal_languages.py",
                         model=(("mingru", "minlstm", "transformer"), "mingru"),
                         size=(("paper", "cpu"), "paper"))
  config = base_config()
  config.seed = 0  # [paper] the mean of 3 seeds: experiments/formal_languages/run.py.

  config.data = config_dict.ConfigDict()
  config.data.name = "formal_language"
  config.data.task = "parity_check"
  config.data.batch_size = 256  # [paper]
  config.data.min_len = 1  # [paper]
  config.data.max_len = 40  # [paper]
  config.data.eval_min_len = 40  # [paper]
  config.data.eval_max_len = 256  # [paper]
  config.data.eval_batches = 8  # [ours] 2048 test strings

  config.model = lm_defaults()
  config.model.cell = choice["model"]
  config.model.features = 128  # [NR] our choice
  config.model.num_layers = 2  # [paper]
  config.model.expansion = 2  # [NR] our choice (the paper's language models use 2)
  config.model.conv_kernel_size = 4  # [paper] Conv4
  config.model.conv_residual = True  # [official]
  config.model.mlp_expansion = 0  # [paper] no MLP
  config.model.dropout = 0.0  # [ours] fresh strings every step
  config.model.init = "torch"  # [paper], [official]
  config.model.tie_embeddings = False  # [official] to_out = Linear(dim, classes, bias=False)
  config.model.head_bias = False  # [official]
  config.model.cell_kwargs.learn_initial_state = True  # [official] use_init_hidden_state
  if choice["model"] == "minlstm":
    config.model.cell_kwargs.normalize = True  # [paper]
    config.model.cell_kwargs.forget_bias = 3.0  # [official] forget_bias_init_scale

  config.train.num_steps = 500_000  # [paper]
  config.train.learning_rate = 3e-4  # [paper]
  config.train.end_learning_rate = 3e-4  # [official] constant: no schedule in main.py
  config.train.warmup_steps = 0  # [official]
  config.train.weight_decay = 0.01  # [paper]
  config.train.weight_decay_on = "all_but_recurrence"  # [official]
  config.train.b1 = 0.9  # [official] PyTorch's AdamW defaults
  config.train.b2 = 0.999  # [official]
  config.train.grad_clip = 1.0  # [NR] our choice (the official selective-copying clip)
  config.train.log_every = 100  # [ours]
  config.train.eval_every = 10_000  # [ours]
  config.train.checkpoint_every = 10_000  # [ours]
  config.train.keep_checkpoints = 2  # [ours]

  if choice["model"] == "transformer":
    config.model.expansion = None  # Attention has its own widths.
    config.model.conv_kernel_size = 0  # Not used by attention.
    config.model.conv_residual = False
    config.model.init = "flax"  # [ours] attention keeps Flax's initialisers.
    config.model.cell_kwargs = config_dict.ConfigDict({"num_heads": 4})  # [ours]
  if choice["size"] == "cpu":
    # [ours] Small enough for a 2-core CPU: about a minute per task and model.
    config.data.batch_size = 32
    config.data.eval_batches = 4
    config.model.features = 32
    config.train.num_steps = 300
    config.train.learning_rate = 3e-3
    config.train.end_learning_rate = 3e-4
    config.train.warmup_steps = 30
    config.train.log_every = 50
    config.train.eval_every = 300
    config.train.checkpoint_every = 300
    config.train.progress_bar = False
    config.train.tensorboard = False
  return config
