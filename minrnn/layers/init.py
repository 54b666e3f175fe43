"""How a model draws the parameters of its Linear, conv and embedding layers: `model.init`.

    model.init = "flax" | "torch"

- `"flax"`: each module's own defaults (`nnx.Linear`: LeCun-normal kernels and zero biases; the
  causal conv: LeCun-normal taps; the language model's embedding: N(0, 0.02)). The default.
- `"torch"`: PyTorch's defaults, which the minRNN paper's models use ("Were RNNs All We
  Needed?", arXiv 2410.01201; official code `BorealisAI/minRNNs`, and the Decision-Mamba code
  its offline-RL models follow): `nn.Linear(fan_in, ...)` draws its weight (Kaiming-uniform
  with a = sqrt(5)) and its bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)); `nn.Conv1d` likewise
  with fan_in = in_channels / groups * kernel_size (the kernel size, for a depthwise conv);
  `nn.Embedding` draws N(0, 1).

A scheme hands out constructor keywords (an empty dict: the module's defaults), so each module
asks it once, with its fan-in, and no module branches on the scheme's name. Norm scales are
ones and norm shifts zeros under both schemes, as in both frameworks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Initializer


def uniform(bound: float) -> Initializer:
  """U(-bound, bound) in the requested shape and dtype."""
  def init(key: jax.Array, shape, dtype: Any = jnp.float32) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


@dataclasses.dataclass(frozen=True)
class ParamInit:
  """A scheme: `dense(fan_in)` gives `kernel_init`/`bias_init` keywords for a Linear or conv
  layer that sums over `fan_in` inputs per output; `embedding()` gives `embedding_init` for an
  `nnx.Embed`. Empty dicts leave a module's own defaults."""

  name: str
  dense: Callable[[int], Mapping[str, Initializer]]
  embedding: Callable[[], Mapping[str, Initializer]]


def _torch_dense(fan_in: int) -> Mapping[str, Initializer]:
  if fan_in < 1:
    raise ValueError(f"fan_in must be >= 1, got {fan_in}.")
  bound = 1.0 / math.sqrt(fan_in)
  return {"kernel_init": uniform(bound), "bias_init": uniform(bound)}


FLAX = ParamInit("flax", dense=lambda fan_in: {}, embedding=lambda: {})
TORCH = ParamInit("torch", dense=_torch_dense,
                  embedding=lambda: {"embedding_init": nnx.initializers.normal(stddev=1.0)})
_SCHEMES = {scheme.name: scheme for scheme in (FLAX, TORCH)}


def get(name: str) -> ParamInit:
  """The scheme called `name` (`model.init`); a ValueError lists the known ones otherwise."""
  if name not in _SCHEMES:
    raise ValueError(f"Unknown parameter init {name!r} (model.init); choose one of "
                     f"{sorted(_SCHEMES)}.")
  return _SCHEMES[name]
