"""A Decision-style sequence model (Chen et al., 2021, arXiv 2106.01345) whose Transformer is
replaced by a stack of `minrnn.blocks.ResidualBlock`, as in "Were RNNs All We Needed?"
(Feng et al., 2024, arXiv 2410.01201, section 4.2).

Each environment step t contributes three tokens, in this order:

    (R_1, s_1, a_1, R_2, s_2, a_2, ...)    R: return-to-go, s: state, a: action

Each token is a linear embedding of its value plus a learned embedding of the timestep t; a
LayerNorm follows (as in the Decision Transformer). The blocks run causally over the 3K tokens
and the action a_t is predicted (tanh-squashed) from the output at the state token s_t, so it
sees R_1..R_t, s_1..s_t and a_1..a_{t-1}.

Parallel mode (`__call__`) runs whole windows `(batch, K, ...)`, for training. Step mode runs one
environment step at a time with a constant-size state: `act` feeds R_t and s_t and returns the
predicted action, `observe_action` feeds the action actually taken. It is exact: the outputs
equal the parallel mode's on the same tokens.

`cell = "transformer"` is the Decision Transformer baseline through the same model: the blocks
are `minrnn.transformer.TransformerBlock`s (causal attention, rotary positions within the
window). Its step-mode state is the window of the last `context` steps, which `act` re-runs in
parallel at every step, as the Decision Transformer evaluates; for the first `context` steps of
an episode it equals the parallel mode on the same window.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.blocks import BlockState, ResidualBlock
from minrnn.transformer import TransformerBlock

# Recurrent cells: one BlockState per layer. Transformer: the window of recent steps.
ModelState = list[BlockState] | dict[str, jax.Array]
TRANSFORMER = "transformer"


class DecisionModel(nnx.Module):
  """Predicts actions from returns-to-go, states and past actions.

  Args:
    state_dim, act_dim: observation and action sizes.
    features: model width.
    num_layers: number of residual blocks.
    cell: the recurrent cell's name in `minrnn.registry` ("mingru", "minlstm", ...), or
      "transformer" for attention blocks.
    cell_kwargs: extra constructor arguments of the cell; for the transformer `num_heads`
      (default 1, the Decision Transformer's).
    context: steps per window in training; the transformer's step mode keeps this many.
    max_timestep: size of the timestep embedding; timesteps must be below it.
    conv_kernel_size: causal conv taps in each block (0: no conv).
    mlp_expansion: gated MLP width as a multiple of `features`.
    dropout: dropout rate on the embeddings and in the blocks (only when `rngs` is passed).
    implementation: `minrnn.ops.linear_scan` path for parallel mode (None: platform default).
    dtype: compute dtype (None: float32); predicted actions and carries are float32.
    param_dtype: parameter dtype.
    rngs: parameter initialisation keys.
  """

  def __init__(self, state_dim: int, act_dim: int, *, features: int, num_layers: int,
               cell: str, cell_kwargs: Mapping[str, Any] | None = None,
               context: int = 20, max_timestep: int = 1000, conv_kernel_size: int = 0,
               mlp_expansion: int = 4,
               dropout: float = 0.0, implementation: str | None = None,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               rngs: nnx.Rngs):
    self.state_dim, self.act_dim, self.features = state_dim, act_dim, features
    self.max_timestep, self.context = max_timestep, context
    self.attention = cell == TRANSFORMER
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.embed_return = nnx.Linear(1, features, **common)
    self.embed_state = nnx.Linear(state_dim, features, **common)
    self.embed_action = nnx.Linear(act_dim, features, **common)
    self.embed_timestep = nnx.Embed(max_timestep, features, **common)
    self.embed_norm = nnx.LayerNorm(features, **common)
    self.embed_dropout = nnx.Dropout(dropout)
    if self.attention:
      kwargs = dict(cell_kwargs or {})
      num_heads = kwargs.pop("num_heads", 1)
      if kwargs:
        raise ValueError(f"The transformer takes only num_heads in cell_kwargs, got {kwargs}.")
      blocks = [TransformerBlock(features, num_heads=num_heads, mlp_expansion=mlp_expansion,
                                 dropout=dropout, **common) for _ in range(num_layers)]
    else:
      blocks = [ResidualBlock(features, cell=cell, cell_kwargs=cell_kwargs,
                              conv_kernel_size=conv_kernel_size, mlp_expansion=mlp_expansion,
                              dropout=dropout, implementation=implementation, **common)
                for _ in range(num_layers)]
    self.blocks = nnx.List(blocks)
    self.norm = nnx.RMSNorm(features, **common)
    self.predict_action = nnx.Linear(features, act_dim, **common)

  def initialize_state(self, batch_size: int) -> ModelState:
    """The state before the first token: one `BlockState` per layer, or for the transformer an
    empty window (`count`: steps seen so far)."""
    if self.attention:
      k = self.context
      return {"returns_to_go": jnp.zeros((batch_size, k), jnp.float32),
              "states": jnp.zeros((batch_size, k, self.state_dim), jnp.float32),
              "actions": jnp.zeros((batch_size, k, self.act_dim), jnp.float32),
              "timesteps": jnp.zeros((batch_size, k), jnp.int32),
              "count": jnp.zeros((batch_size,), jnp.int32)}
    return [block.initialize_state(batch_size) for block in self.blocks]

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
      state: the state before the window (None: start of an episode); always None for the
        transformer, which attends within the window only.
      rngs: dropout keys (stream `dropout`); None turns dropout off.

    Returns:
      `(predicted_actions, state)`: float32 `(batch, K, act_dim)` in (-1, 1), and the state
      after the window's last action token (None for the transformer).
    """
    self._check(returns_to_go, states, actions, timesteps)
    if self.attention and state is not None:
      raise ValueError("The transformer carries no state between windows; pass state=None.")
    batch, k = returns_to_go.shape
    r, s, a = self._tokens(returns_to_go, states, actions, timesteps)
    x = jnp.stack([r, s, a], axis=2).reshape(batch, 3 * k, self.features)
    x = self.embed_dropout(self.embed_norm(x), deterministic=rngs is None, rngs=rngs)
    if self.attention:
      for block in self.blocks:
        x = block(x, rngs=rngs)
      new_state = None
    else:
      if state is None:
        state = self.initialize_state(batch)
      new_state = []
      for block, block_state in zip(self.blocks, state):
        x, block_state = block(x, block_state, rngs=rngs)
        new_state.append(block_state)
    # Outputs at the state tokens: positions 1, 4, 7, ...
    return self._action(x.reshape(batch, k, 3, self.features)[:, :, 1]), new_state

  def _step_token(self, state: ModelState, x: jax.Array) -> tuple[ModelState, jax.Array]:
    x = self.embed_norm(x)
    new_state = []
    for block, block_state in zip(self.blocks, state):
      block_state, x = block.step(block_state, x)
      new_state.append(block_state)
    return new_state, x

  def act(self, state: ModelState, returns_to_go: jax.Array, states: jax.Array,
          timesteps: jax.Array) -> tuple[ModelState, jax.Array]:
    """Step mode: feeds R_t and s_t, returns `(state, action)`.

    returns_to_go float `(batch,)`, states float `(batch, state_dim)`, timesteps int `(batch,)`;
    the action is float32 `(batch, act_dim)`. Call `observe_action` with the action taken
    before the next `act`.
    """
    if self.attention:
      return self._window_act(state, returns_to_go, states, timesteps)
    time = self.embed_timestep(timesteps)
    state, _ = self._step_token(state, self.embed_return(returns_to_go[:, None]) + time)
    state, x = self._step_token(state, self.embed_state(states) + time)
    return state, self._action(x)

  def observe_action(self, state: ModelState, actions: jax.Array,
                     timesteps: jax.Array) -> ModelState:
    """Step mode: feeds the action a_t `(batch, act_dim)` taken at timesteps `(batch,)`."""
    if self.attention:
      slot = jnp.maximum(jnp.minimum(state["count"], self.context) - 1, 0)
      return {**state, "actions": _write(state["actions"], slot, actions)}
    time = self.embed_timestep(timesteps)
    state, _ = self._step_token(state, self.embed_action(actions) + time)
    return state

  def _window_act(self, state, returns_to_go, states, timesteps):
    # Steps fill the window from the left; once it is full it shifts left by one. Padding
    # after the newest state token cannot change it (causal attention), so the window needs
    # no mask and its positions start at 0, as in training.
    count = state["count"]
    full = count >= self.context
    slot = jnp.minimum(count, self.context - 1)
    window = {k: _shift_where(v, full) for k, v in state.items() if k != "count"}
    window["returns_to_go"] = _write(window["returns_to_go"], slot, returns_to_go)
    window["states"] = _write(window["states"], slot, states)
    window["actions"] = _write(window["actions"], slot, jnp.zeros_like(window["actions"][:, 0]))
    window["timesteps"] = _write(window["timesteps"], slot, timesteps)
    predicted, _ = self(window["returns_to_go"], window["states"], window["actions"],
                        window["timesteps"])
    action = jnp.take_along_axis(predicted, slot[:, None, None], axis=1)[:, 0]
    return {**window, "count": count + 1}, action


def _shift_where(window: jax.Array, full: jax.Array) -> jax.Array:
  """Rows of `window` `(batch, K, ...)` where `full` `(batch,)`: shifted one step left."""
  full = full.reshape(full.shape + (1,) * (window.ndim - 1))
  return jnp.where(full, jnp.roll(window, -1, axis=1), window)


def _write(window: jax.Array, slot: jax.Array, value: jax.Array) -> jax.Array:
  """`window[b, slot[b]] = value[b]` for every row b; window `(batch, K, ...)`."""
  at = jax.nn.one_hot(slot, window.shape[1], dtype=jnp.bool_)
  at = at.reshape(at.shape + (1,) * (window.ndim - 2))
  return jnp.where(at, value[:, None].astype(window.dtype), window)
