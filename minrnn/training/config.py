"""Run configs: the entries every run shares, and loading a config file with overrides.

Each config file under `configs/` (one per task family) defines `get_config(variant)`, whose
variant string picks the model and size (`parse_variant`, e.g. `configs/shakespeare.py:gru,cpu`),
and starts from `base_config()` (the device mesh and the training loop's bookkeeping) and the
model defaults (`block_defaults`, `lm_defaults`), then sets its own data, model and optimisation
settings (each with its source), so the keys no experiment tunes have one default. `load_config` is how scripts, experiments and tests read such a file; the command line
of `python -m minrnn.train` reads the same files through `ml_collections.config_flags`.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import math
import pathlib
from typing import Sequence

from ml_collections import config_dict

from minrnn.training import distributed

# A relative config path is looked up from the working directory, then from the repository
# that holds this package (an editable install), so `configs/...` works from anywhere there.
_REPO = pathlib.Path(__file__).resolve().parents[2]


def base_config() -> config_dict.ConfigDict:
  """A config holding `mesh`, the loop's keys under `train` that are not hyper-parameters, the
  optimizer's kind (AdamW on matrices unless a config says otherwise), gradient accumulation,
  and how the best checkpoint is chosen and the run stopped early.

  Sources: [ours] choices of this codebase.
  """
  config = config_dict.ConfigDict()
  # The device mesh; `-1` takes the devices the other axes leave.
  config.mesh = config_dict.ConfigDict(distributed.MESH_DEFAULTS)
  config.train = config_dict.ConfigDict()
  config.train.stop_at_step = config_dict.placeholder(int)  # Stop early; resume later.
  config.train.keep_checkpoints = 3
  config.train.progress_bar = True
  config.train.tensorboard = True
  # The update rule and what weight decay applies to (see `minrnn.training.optimizer`); configs that
  # follow another recipe set their own.
  config.train.optimizer = "adamw"
  config.train.weight_decay_on = "matrices"
  # [ours] `data.batch_size` is the whole batch; it is split into this many micro-batches whose
  # gradients are averaged into one update (`minrnn.training.steps.make_train_step`).
  config.train.grad_accum_steps = 1
  # [ours] The evaluation metric that picks the `best/` checkpoint (and that early stopping
  # watches); `final_eval.json` reports its best value, step, and the other splits there.
  config.train.best_metric = "loss"
  # [ours] None: train to num_steps. A number: stop after that many evaluations in a row
  # without a better `best_metric` (`minrnn.training.selection`).
  config.train.early_stopping_patience = config_dict.placeholder(int)
  # [ours] 0: a step whose loss, gradient or update is not finite stops the run at once (the
  # last checkpoint stays the place to resume from). n > 0: such a step is skipped, the run stops
  # after more than n in a row (`minrnn.training.divergence`).
  config.train.skip_nonfinite_steps = 0
  return config


def block_defaults() -> config_dict.ConfigDict:
  """The blocks' keys of a `model` section (`minrnn.models.build`), with their defaults.

  Sources: [paper] "Were RNNs All We Needed?" (arXiv 2410.01201, C.2: pre-norm residual blocks;
  its language models are Conv4 -> minRNN -> MLP); [Mamba] the short causal conv of 4 taps;
  [nanoGPT] the MLP width 4 * d; [official] the paper's code (`BorealisAI/minRNNs`); [ours]
  choices of this codebase.
  """
  model = config_dict.ConfigDict()
  model.cell = "mingru"  # A name in minrnn.layers.registry.
  model.cell_kwargs = config_dict.ConfigDict()  # The temporal layer's own options.
  model.features = 256  # [ours] Every config sets its width and depth.
  model.num_layers = 2  # [ours]
  # [ours] None: the cell is `features` wide with no down-projection. The paper's minRNN layer
  # is `features * expansion` wide with a down-projection (a number here).
  model.expansion = config_dict.placeholder(int)
  model.conv_kernel_size = 4  # [Mamba], [paper] (0: no conv)
  # [ours] The conv inside the temporal branch, after the norm; True: on a residual branch of
  # its own before the norm, as [official] models/model.py.
  model.conv_residual = False
  model.mlp_expansion = 4  # [nanoGPT], [paper] (0: no MLP)
  # [ours] A gated MLP; False: Linear -> GELU -> Linear, as [official] and Decision Mamba.
  model.mlp_gated = True
  model.dropout = 0.0  # [ours]
  model.pre_norm = True  # [paper]
  model.residual = True  # [paper]
  model.implementation = config_dict.placeholder(str)  # None: the platform's fastest scan.
  model.dtype = "float32"  # [ours] "bfloat16" for mixed precision on GPUs.
  # [ours] Flax's initialisers; "torch": PyTorch's defaults, as the paper's models
  # (minrnn.layers.init).
  model.init = "flax"
  return model


def lm_defaults() -> config_dict.ConfigDict:
  """A language model's `model` section: the blocks' keys and the embedding and head's.

  Sources: [GPT-2] a tied embedding and head, as nanoGPT; [Baevski & Auli] the adaptive
  embedding's width divisor 4 (arXiv 1809.10853); [ours] choices of this codebase.
  """
  model = block_defaults()
  model.final_norm = True  # [GPT-2] RMSNorm before the head (SRU++: none).
  model.io_dropout = 0.0  # [ours] Dropout on the embeddings and the last hidden state.
  model.tie_embeddings = True  # [GPT-2]
  model.head_bias = False  # [GPT-2] (an untied SRU++ head has a bias)
  model.adaptive_cutoffs = config_dict.placeholder(tuple)  # None: a full softmax.
  model.div_val = 4  # [Baevski & Auli]
  model.embed_features = config_dict.placeholder(int)  # None: the model width.
  model.emb_dropout = 0.0  # [ours] Dropout inside the adaptive embedding (SRU++: 0.15).
  # None: full (batch, time, vocab) scores; a number: target-only scoring in chunks of that
  # many positions (required by the adaptive softmax).
  model.softmax_chunk_size = config_dict.placeholder(int)
  return model


def classifier_defaults() -> config_dict.ConfigDict:
  """A sequence classifier's `model` section (`minrnn.models.SequenceClassifier`): the blocks'
  keys and the readout's.

  Sources: [ours] choices of this codebase.
  """
  model = block_defaults()
  model.final_norm = True  # [ours] RMSNorm before the readout, as the language model's head.
  model.head_bias = True  # [ours] the output layer's bias
  # [ours] "last": the output at each row's last token (a causal model has read the whole row
  # there); "mean": the mean over the row's tokens.
  model.readout = "last"
  return model


def srupp_training(train: config_dict.ConfigDict, size: str) -> None:
  """Sets, in place, the official SRU++ recipe on a `train` section (both long-context tasks).

  Sources: [sru] the official `sru` repository's `experiments/srupp_experiments/train_enwik8.py`
  and `train_wt103.py`, which share it; [ours] choices of this codebase. `size` "gpu" and "cpu"
  (short runs) train with AdamW on matrices instead of RAdam on everything.
  """
  train.num_steps = 400_000  # [sru] max_iter
  train.learning_rate = 3e-4  # [sru] lr
  train.end_learning_rate = 0.0  # [sru] CosineAnnealingLR decays to 0.
  train.warmup_steps = 16_000  # [sru]
  train.weight_decay = 0.1  # [sru]
  train.optimizer = "radam"  # [sru]
  train.weight_decay_on = "all"  # [sru] RAdam decays every parameter.
  train.b1 = 0.9  # [sru] RAdam defaults
  train.b2 = 0.999  # [sru]
  train.grad_clip = 1.0  # [sru] clip_grad
  train.log_every = 200  # [sru] log_period
  train.eval_every = 8000  # [sru] eval_period
  train.checkpoint_every = 2000  # [ours]
  if size in ("gpu", "cpu"):
    # [ours] RAdam's rectification keeps its first few hundred steps tiny (a built-in warmup
    # for 400k-step runs); the short variants train with AdamW on matrices.
    train.optimizer = "adamw"
    train.weight_decay_on = "matrices"


def parse_variant(variant: str | None, family: str,
                  **choices: tuple[Sequence[str], str | None]) -> dict[str, str]:
  """The parts of a config file's variant string, e.g. `"gru,cpu"` for
  `configs/shakespeare.py:gru,cpu`.

  Args:
    variant: comma-separated parts in any order (None or "": all defaults).
    family: the config file's name, for messages.
    **choices: part name -> (its values, its default; None: the part must be given).

  Returns:
    part name -> value.
  """
  parts = [p.strip() for p in (variant or "").split(",") if p.strip()]
  chosen = {}
  for part in parts:
    names = [name for name, (values, _) in choices.items() if part in values]
    if not names:
      options = "; ".join(f"{name}: {', '.join(values)}" for name, (values, _) in
                          choices.items())
      raise ValueError(f"Unknown variant part {part!r} of {family}. Choose from {options} "
                       f"(e.g. {family}:{','.join(v[0] for v, _ in choices.values())}).")
    if names[0] in chosen:
      raise ValueError(f"The variant {variant!r} of {family} gives {names[0]} twice.")
    chosen[names[0]] = part
  for name, (values, default) in choices.items():
    if name not in chosen:
      if default is None:
        raise ValueError(f"The config {family} needs a {name} in its variant, one of "
                         f"{', '.join(values)} (e.g. {family}:{values[0]}).")
      chosen[name] = default
  return chosen


def find_config(path: str | pathlib.Path) -> pathlib.Path:
  """A config file's path: `path` from the working directory, else from the repository that
  holds this package; a FileNotFoundError says where it looked."""
  path = pathlib.Path(path)
  for candidate in (path, _REPO / path):
    if candidate.is_file():
      return candidate.resolve()
  raise FileNotFoundError(
      f"Config file {str(path)!r} not found (looked in the working directory and in {_REPO}). "
      "Pass a path to a file under configs/, e.g. configs/shakespeare.py:mingru.")


def load_config(path: str | pathlib.Path, variant: str | None = None,
                overrides: Sequence[str] = ()) -> config_dict.ConfigDict:
  """`get_config(variant)` of the config file at `path`, with `key.sub=value` overrides.

  `path` may carry the variant as the command line does: `configs/shakespeare.py:gru,cpu`.
  """
  path = str(path)
  if variant is None and ".py:" in path:
    path, variant = path.split(".py:", 1)
    path += ".py"
  path = find_config(path)
  spec = importlib.util.spec_from_file_location(f"minrnn_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{path} defines no get_config(); it is not a minrnn config file.")
  config = module.get_config() if variant is None else module.get_config(variant)
  apply_overrides(config, overrides, source=str(path))
  return config


def _leaves(node: config_dict.ConfigDict, prefix: str = "") -> dict[str, object]:
  """`{"a.b": value}` of every setting (not the sections) under `node`."""
  leaves = {}
  for name, value in node.items():
    if isinstance(value, config_dict.ConfigDict):
      leaves.update(_leaves(value, f"{prefix}{name}."))
    else:
      leaves[prefix + name] = value
  return leaves


def _initials(name: str) -> str:
  return "".join(word[0] for word in name.split("_") if word)


def suggest(key: str, keys: Sequence[str]) -> list[str]:
  """The settings of `keys` a mistyped `key` most likely meant: those whose name it
  abbreviates in the same section (`train.lr` -> `train.learning_rate`), else the closest."""
  section, _, name = key.rpartition(".")
  abbreviated = [k for k in keys if k.rpartition(".")[0] == section
                 and _initials(k.rpartition(".")[2]) == name and len(name) > 1]
  return abbreviated or difflib.get_close_matches(key, keys, n=3)


def _finite(value: object) -> bool:
  """False for a float that is not finite, or a tuple or list holding one."""
  if isinstance(value, (tuple, list)):
    return all(_finite(v) for v in value)
  return not isinstance(value, float) or math.isfinite(value)


# Settings that count something and must be at least 1 (a 0 would divide by zero or never
# happen); checked before a run touches its workdir.
POSITIVE = ("train.num_steps", "train.log_every", "train.eval_every", "train.checkpoint_every",
            "train.keep_checkpoints", "train.grad_accum_steps", "data.batch_size",
            "data.eval_batch_size")


def check_values(config: config_dict.ConfigDict) -> None:
  """A ValueError naming the first setting that is not a finite number where a number is
  expected, or below 1 among `POSITIVE`."""
  leaves = _leaves(config)
  for key, value in leaves.items():
    if not _finite(value):
      raise ValueError(f"{key} = {value!r} is not a finite number; give a finite value "
                       f"(--config.{key}=...).")
  for key in POSITIVE:
    value = leaves.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                              or value < 1):
      raise ValueError(f"{key} = {value!r} must be a whole number >= 1 "
                       f"(--config.{key}=...).")


_NONFINITE_WORDS = ("nan", "inf", "infinity")


def apply_overrides(config: config_dict.ConfigDict, overrides: Sequence[str],
                    source: str = "the config") -> None:
  """Sets `key.sub=value` strings on a ConfigDict.

  Values are Python literals (`3`, `1e-3`, `None`, `'parity'`, `(8, 16)`) or else plain
  strings; a number that is not finite (`nan`, `inf`, `1e999`) is a ValueError. An unknown
  key is a ValueError that suggests the closest ones (`suggest`); keys may be added
  only under a `cell_kwargs` section (the temporal layer's own options, checked when it is
  built); a value of the wrong type is a ValueError naming the expected type.
  """
  for override in overrides:
    key, sep, text = override.partition("=")
    if not sep:
      raise ValueError(f"Override {override!r} must look like key.sub=value.")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    if not _finite(value):
      raise ValueError(f"Bad value for {key}: {text!r} is not a finite number.")
    *parents, leaf = key.split(".")
    node = config
    for name in parents:
      if name not in node or not isinstance(node[name], config_dict.ConfigDict):
        node = None
        break
      node = node[name]
    if node is None or (leaf not in node and parents[-1:] != ["cell_kwargs"]):
      close = suggest(key, list(_leaves(config)))
      hint = f" Did you mean {' or '.join(close)}?" if close else ""
      raise ValueError(f"Unknown setting {key!r} (not in {source}).{hint}")
    try:
      setattr(node, leaf, value)
    except TypeError as e:
      if text.strip().lstrip("+-").lower() in _NONFINITE_WORDS:  # A number field got "nan".
        raise ValueError(f"Bad value for {key}: {text!r} is not a finite number.") from None
      raise ValueError(f"Bad value for {key}: {text!r} ({' '.join(str(e).split())[:160]}).") \
          from None
