"""A Decision-style sequence model (Chen et al., 2021, arXiv 2106.01345) whose Transformer is
replaced by a stack of `minrnn.models.block.ResidualBlock`, as in "Were RNNs All We Needed?"
(Feng et al., 2024, arXiv 2410.01201, section 4.2).

Each environment step t contributes three tokens, in this order:

    (R_1, s_1, a_1, R_2, s_2, a_2, ...)    R: return-to-go, s: state, a: action

Each token is a linear embedding of its value plus a learned embedding of the timestep t; a
LayerNorm follows (as in the Decision Transformer). The blocks run causally over the 3K tokens
and the action a_t is predicted (tanh-squashed) from the output at the state token s_t, so it
sees R_1..R_t, s_1..s_t and a_1..a_{t-1}. The blocks' temporal layer is any registered one: a
minRNN cell, or causal attention for the Decision Transformer baseline.

Parallel mode (`__call__`) runs whole windows `(batch, K, ...)`, for training and for the
windowed evaluation. Step mode runs one environment step at a time with a constant-size state:
`act` feeds R_t and s_t and returns the predicted action, `observe_action` feeds the action
actually taken. It is exact: the outputs equal the parallel mode's on the same tokens.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.layers.init import FLAX, ParamInit
from minrnn.models.block import BlockState, ResidualBlock

ModelState = tuple[BlockState, ...]
# (layer index, rngs) -> the block of that layer.
BlockFactory = Callable[[int, nnx.Rngs], ResidualBlock]


class DecisionModel(nnx.Module):
  """Predicts actions from returns-to-go, states and past actions.

  Args:
    state_dim, act_dim: observation and action sizes.
    features: model width.
    num_layers: number of blocks.
    block: builds block i (see `minrnn.models.build`).
    max_timestep: size of the timestep embedding; timesteps must be below it.
    dropout: dropout rate on the embeddings (only when `rngs` is passed).
    dtype: compute dtype (None: float32); predicted actions and carries are float32.
    param_dtype: parameter dtype.
    init: the parameter scheme (`minrnn.layers.init`) of the token embeddings and the action
      head ("torch": PyTorch's defaults, which the Decision-Transformer / Decision-Mamba code
      leaves on these layers).
    rngs: parameter initialisation keys.
  """

  def __init__(self, state_dim: int, act_dim: int, *, features: int, num_layers: int,
               block: BlockFactory, max_timestep: int = 1000, dropout: float = 0.0,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               init: ParamInit = FLAX, rngs: nnx.Rngs):
    self.state_dim, self.act_dim, self.features = state_dim, act_dim, features
    self.max_timestep = max_timestep
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.embed_return = nnx.Linear(1, features, **init.dense(1), **common)
    self.embed_state = nnx.Linear(state_dim, features, **init.dense(state_dim), **common)
    self.embed_action = nnx.Linear(act_dim, features, **init.dense(act_dim), **common)
    self.embed_timestep = nnx.Embed(max_timestep, features, **init.embedding(), **common)
    self.embed_norm = nnx.LayerNorm(features, **common)
    self.embed_dropout = nnx.Dropout(dropout)
    self.blocks = nnx.List([block(i, rngs) for i in range(num_layers)])
    self.norm = nnx.RMSNorm(features, **common)
    self.predict_action = nnx.Linear(features, act_dim, **init.dense(features), **common)

  def initialize_state(self, batch_size: int) -> ModelState:
    """The step-mode state before the first token: one `BlockState` per layer."""
    return tuple(block.initialize_state(batch_size) for block in self.blocks)

  def _tokens(self, returns_to_go, states, actions, timesteps):
    # Shapes (..., F): one embedding per kind, each with its step's timestep embedding.
    time = self.embed_timestep(timesteps)
    return (self.embed_return(returns_to_go[..., None]) + time,
            self.embed_state(states) + time,
            self.embed_action(actions) + time)

  def _action(self, x: jax.Array) -> jax.Array:
    return jnp.tanh(self.predict_action(self.norm(x)).astype(jnp.float32))

  def _check(self, returns_to_go, states, actions, timesteps) -> None:
    if returns_to_go.ndim != 2:
      raise ValueError(f"returns_to_go must have shape (batch, context), got "
                       f"{tuple(returns_to_go.shape)}.")
    b, k = returns_to_go.shape
    for name, value, shape in (("states", states, (b, k, self.state_dim)),
                               ("actions", actions, (b, k, self.act_dim)),
                               ("timesteps", timesteps, (b, k))):
      if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape} to match returns_to_go {(b, k)} and "
                         f"the model's sizes, got {tuple(value.shape)}.")
    if not jnp.issubdtype(timesteps.dtype, jnp.integer):
      raise ValueError(f"timesteps must be integers, got {timesteps.dtype}.")

  def __call__(self, returns_to_go: jax.Array, states: jax.Array, actions: jax.Array,
               timesteps: jax.Array, state: ModelState | None = None, *,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, ModelState]:
    """Parallel mode over windows of K steps.

    Args:
      returns_to_go: float `(batch, K)`.
      states: float `(batch, K, state_dim)`.
      actions: float `(batch, K, act_dim)`; a_t is seen only by steps after t.
      timesteps: int `(batch, K)`, each below `max_timestep`.
      state: the state before the window (None: start of an episode).
      rngs: dropout keys (stream `dropout`); None turns dropout off.

    Returns:
      `(predicted_actions, state)`: float32 `(batch, K, act_dim)` in (-1, 1), and the state
      after the window's last action token.
    """
    self._check(returns_to_go, states, actions, timesteps)
    batch, k = returns_to_go.shape
    r, s, a = self._tokens(returns_to_go, states, actions, timesteps)
    x = jnp.stack([r, s, a], axis=2).reshape(batch, 3 * k, self.features)
    x = self.embed_dropout(self.embed_norm(x), deterministic=rngs is None, rngs=rngs)
    if state is None:
      state = (None,) * len(self.blocks)
    new_state = []
    for block, block_state in zip(self.blocks, state):
      x, block_state = block(x, block_state, rngs=rngs)
      new_state.append(block_state)
    # Outputs at the state tokens: positions 1, 4, 7, ...
    return self._action(x.reshape(batch, k, 3, self.features)[:, :, 1]), tuple(new_state)

  def _step_token(self, state: ModelState, x: jax.Array) -> tuple[ModelState, jax.Array]:
    x = self.embed_norm(x)
    new_state = []
    for block, block_state in zip(self.blocks, state):
      block_state, x = block.step(block_state, x)
      new_state.append(block_state)
    return tuple(new_state), x

  def act(self, state: ModelState, returns_to_go: jax.Array, states: jax.Array,
          timesteps: jax.Array) -> tuple[ModelState, jax.Array]:
    """Step mode: feeds R_t and s_t, returns `(state, action)`.

    returns_to_go float `(batch,)`, states float `(batch, state_dim)`, timesteps int `(batch,)`;
    the action is float32 `(batch, act_dim)`. Call `observe_action` with the action taken
    before the next `act`.
    """
    time = self.embed_timestep(timesteps)
    state, _ = self._step_token(state, self.embed_return(returns_to_go[:, None]) + time)
    state, x = self._step_token(state, self.embed_state(states) + time)
    return state, self._action(x)

  def observe_action(self, state: ModelState, actions: jax.Array,
                     timesteps: jax.Array) -> ModelState:
    """Step mode: feeds the action a_t `(batch, act_dim)` taken at timesteps `(batch,)`."""
    time = self.embed_timestep(timesteps)
    state, _ = self._step_token(state, self.embed_action(actions) + time)
    return state
