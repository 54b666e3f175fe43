"""Formal-language length generalisation: train on strings of length 1-40, test on 40-256
(later versions of "Were RNNs All We Needed?", arXiv 2410.01201; tasks from Delétang et al.,
2023 and the xLSTM paper, generated as the official minRNNs code does:
`minrnn.data.formal_languages`).

    python -m minrnn.train --config configs/formal_languages.py:mingru \
        --config.data.task=majority --workdir runs/majority

Variant `<model>[,<size>]`: model `mingru` (default), `minlstm` or `transformer` (a causal
Transformer with rotary positions, which need no maximum length); size `paper` (default) or
`cpu` (a small model and budget: about a minute a task on a 2-core CPU). Pick the task with
`--config.data.task=parity_check` (or even_pairs, cycle_nav, bucket_sort, majority,
majority_count, missing_duplicate).

Where each setting comes from:
  [task]   the tasks' protocol: training lengths 1-40, test lengths 40-256;
  [ours]   choices of this codebase (the paper's model sizes for these tasks are not stated
           in the text we had).
"""

from ml_collections import config_dict

from minrnn.training.config import base_config, lm_defaults, parse_variant


def get_config(variant: str = "") -> config_dict.ConfigDict:
  choice = parse_variant(variant, "configs/formal_languages.py",
                         model=(("mingru", "minlstm", "transformer"), "mingru"),
                         size=(("paper", "cpu"), "paper"))
  config = base_config()
  config.seed = 0

  config.data = config_dict.ConfigDict()
  config.data.name = "formal_language"
  config.data.task = "parity_check"
  config.data.batch_size = 64  # [ours]
  config.data.min_len = 1  # [task]
  config.data.max_len = 40  # [task]
  config.data.eval_min_len = 40  # [task]
  config.data.eval_max_len = 256  # [task]
  config.data.eval_batches = 8  # [ours] 512 test strings

  config.model = lm_defaults()
  config.model.cell = choice["model"]
  config.model.features = 128  # [ours]
  config.model.num_layers = 2  # [ours]
  config.model.conv_kernel_size = 4  # [ours] as in the other minrnn models
  config.model.mlp_expansion = 4  # [ours]
  config.model.dropout = 0.0  # [ours] fresh strings every step

  config.train.num_steps = 20_000  # [ours]
  config.train.learning_rate = 1e-3  # [ours]
  config.train.end_learning_rate = 1e-4  # [ours]
  config.train.warmup_steps = 500  # [ours]
  config.train.weight_decay = 0.1  # [ours]
  config.train.b1 = 0.9  # [ours]
  config.train.b2 = 0.99  # [ours]
  config.train.grad_clip = 1.0  # [ours]
  config.train.log_every = 100  # [ours]
  config.train.eval_every = 2000  # [ours]
  config.train.checkpoint_every = 2000  # [ours]
  config.train.keep_checkpoints = 2  # [ours]

  if choice["model"] == "transformer":
    config.model.conv_kernel_size = 0  # Not used by attention.
    config.model.cell_kwargs.num_heads = 4  # [ours]
  if choice["size"] == "cpu":
    # [ours] Small enough for a 2-core CPU: about a minute per task and model.
    config.data.batch_size = 32
    config.data.eval_batches = 4
    config.model.features = 32
    config.model.mlp_expansion = 2
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
