"""The SRU++ configs against the official protocol: `configs/enwik8.py:srupp` and
`configs/wikitext103.py:srupp` resolved, compared with the settings of asappresearch/sru at the
commit that published the numbers (0fca653, branch 3.0.0-dev), written out here by hand:
`experiments/srupp_experiments/train_enwik8.py` and `train_wt103.py` (argparse defaults), their
README's commands (8 GPUs, `--layer_norm`; the test pass with `--eval_unroll_size`) and
`sru/modules.py` (where `--layer_norm` puts the LayerNorm)."""

import math

import jax
import pytest
from flax import nnx

from minrnn.models import build_language_model
from minrnn.training.config import load_config
from minrnn.training.final_test import protocol_config

# Common to both scripts' argparse defaults at 0fca653.
COMMON = {
    "seed": 1234,  # --seed
    "train.num_steps": 400_000,  # --max_iter
    "train.learning_rate": 3e-4,  # --lr
    "train.end_learning_rate": 0.0,  # CosineAnnealingLR(optimizer, max_iter): cosine to 0
    "train.warmup_steps": 16_000,  # --warmup_steps
    "train.weight_decay": 0.1,  # --weight_decay, RAdam(parameters, ...): every parameter
    "train.weight_decay_on": "all",
    "train.optimizer": "radam",  # from radam import RAdam
    "train.grad_clip": 1.0,  # --clip_grad
    "train.eval_every": 8000,  # --eval_period
    "data.eval_batch_size": 16,  # --eval_batch_size (the training-time evaluation)
    "model.features": 3072,  # --n_d
    "model.num_layers": 10,  # --depth
    "model.cell": "srupp",
    "model.cell_kwargs.proj_features": 768,  # --n_proj
    "model.cell_kwargs.attention_every": 1,  # --attn_every_n_layers
    "model.cell_kwargs.highway_bias": -2.0,  # --bias
    # --layer_norm: SRUppAttention / SRUppProjectedLinear(layer_norm=True), every
    # SRUppCell(layer_norm=False) ("use layer norm in transform_module", modules.py).
    "model.cell_kwargs.attn_layer_norm": True,
    "model.cell_kwargs.layer_norm": False,
    # Model.forward: emb = self.drop(embedding(x)); rnn(...); output = self.drop(output).
    "model.pre_norm": False,
    "model.residual": False,
    "model.final_norm": False,
    "model.conv_kernel_size": 0,
    "model.mlp_expansion": 0,
    # eval_model after training: the best checkpoint, create_batches(dev_/test_, 1),
    # set_mask(eval_unroll_size, same_length=True), the previous segment as memory.
    "final_test.splits": ("valid", "test"),
    "final_test.batch_size": 1,
    "final_test.max_batches": None,
    "final_test.cell_kwargs.same_length": True,
}

OFFICIAL = {
    "enwik8": {
        **COMMON,
        "train.log_every": 200,  # --log_period
        "data.batch_size": 32,  # --batch_size 4 per GPU, README: --nproc_per_node 8
        "data.seq_len": 1024,  # --unroll_size
        "data.eval_seq_len": 1024,  # --eval_unroll_size 0: the unroll size
        "model.cell_kwargs.memory_length": 1024,  # memory = the previous segment's inputs
        "model.cell_kwargs.dropout": 0.22,  # --dropout
        "model.cell_kwargs.attn_dropout": 0.22,  # --attn_dropout
        "model.io_dropout": 0.22,  # self.drop = nn.Dropout(args.dropout)
        "model.tie_embeddings": False,  # self.output_layer = nn.Linear(n_d, n_V)
        "model.head_bias": True,
        "model.adaptive_cutoffs": None,
        "final_test.seq_len": 3072,  # README: --eval_unroll_size 3072
        "final_test.cell_kwargs.memory_length": 3072,
    },
    "wikitext103": {
        **COMMON,
        "data.batch_size": 64,  # --batch_size 8 per GPU, README: --nproc_per_node 8
        "data.seq_len": 768,  # --unroll_size
        "data.eval_seq_len": 768,  # --eval_unroll_size 0: the unroll size
        "model.cell_kwargs.memory_length": 768,
        "model.cell_kwargs.dropout": 0.15,  # --dropout
        "model.cell_kwargs.attn_dropout": 0.15,  # --attn_dropout
        "model.io_dropout": 0.15,
        "model.emb_dropout": 0.15,  # --emb_dropout, AdaptiveEmbedding / AdaptiveLogSoftmax
        "model.adaptive_cutoffs": (19997, 39997, 199997),  # Model.cutoffs
        "model.div_val": 4,  # --div_val
        "model.embed_features": 1024,  # --n_e
        "model.tie_embeddings": True,  # emb_weights / proj_weights of the softmax, shared
        "final_test.seq_len": 2560,  # README: --eval_unroll_size 2560
        "final_test.cell_kwargs.memory_length": 2560,
    },
}
# The README's table (0fca653): parameters of the base models; vocabularies as minrnn reads the
# data (enwik8: 256 byte ids where the official np.unique keeps the byte values that occur;
# WikiText-103: 267,735 words with <eos>).
PARAMETERS = {"enwik8": (108e6, 256), "wikitext103": (148e6, 267_735)}


def _get(config, key):
  for part in key.split("."):
    config = config[part]
  return tuple(config) if isinstance(config, (list, tuple)) else config


@pytest.mark.parametrize("family", sorted(OFFICIAL))
def test_the_srupp_config_has_the_official_settings(family):
  config = load_config(f"configs/{family}.py:srupp")
  got = {key: _get(config, key) for key in OFFICIAL[family]}
  assert got == OFFICIAL[family]


@pytest.mark.parametrize("family", sorted(OFFICIAL))
def test_the_srupp_base_model_has_the_published_size_and_layers(family):
  config = load_config(f"configs/{family}.py:srupp")
  published, vocab = PARAMETERS[family]
  model = nnx.eval_shape(lambda: build_language_model(config.model, vocab, 0))
  count = sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert abs(count - published) < 0.5e6  # "108M" / "148M", rounded to millions
  layers = [block.temporal for block in model.blocks]
  assert all(layer.attention and layer.memory_length == _get(config, "data.seq_len")
             for layer in layers)
  # No input LayerNorm; the attention's has PyTorch's epsilon.
  assert all(layer.input_norm is None and layer.transform.norm.epsilon == 1e-5
             for layer in layers)
  # SRUpp: SRUppCell(dropout=dropout if i + 1 != num_layers else 0).
  dropout = _get(config, "model.cell_kwargs.dropout")
  assert [layer.highway_dropout.rate for layer in layers] == [dropout] * 9 + [0.0]


@pytest.mark.parametrize("family", sorted(OFFICIAL))
def test_the_final_test_pass_evaluates_like_the_official_test_pass(family):
  test = protocol_config(load_config(f"configs/{family}.py:srupp"))
  length = OFFICIAL[family]["final_test.seq_len"]
  assert (test.data.eval_batch_size, test.data.eval_seq_len, test.data.eval_batches) == (
      1, length, None)
  assert test.model.cell_kwargs.memory_length == length
  assert test.model.cell_kwargs.same_length
