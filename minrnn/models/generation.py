"""Text generation: the prompt in parallel mode, then one token at a time in step mode.

The decoding state is the model's constant-size state (each layer's conv window and cell
carry), so the cost per generated token does not grow with the length of the text.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from minrnn.models.lm import LanguageModel


def sample_token(logits: jax.Array, key: jax.Array, temperature: float,
                 top_k: int | None) -> jax.Array:
  """Token ids int32 `(batch,)` from logits `(batch, vocab)`.

  `temperature == 0` picks the most likely token; `top_k` keeps only the k most likely.
  """
  if temperature == 0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / temperature
  if top_k is not None:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def make_generator(model: LanguageModel, *, length: int, temperature: float = 1.0,
                   top_k: int | None = None):
  """A jitted `(prompt, key) -> tokens` for `model`'s current parameters.

  Args:
    model: the language model.
    length: number of tokens to generate after the prompt.
    temperature: softmax temperature (0: greedy).
    top_k: sample among the k most likely tokens only (None: all).

  Returns:
    A function of a prompt int `(batch, prompt_len)` (prompt_len >= 1) and a PRNG key that
    returns the generated tokens int32 `(batch, length)`. The same key gives the same tokens.
  """
  if length < 1:
    raise ValueError(f"length must be >= 1 token, got {length}.")
  if temperature < 0:
    raise ValueError(f"temperature must be >= 0, got {temperature}.")
  if top_k is not None and not 1 <= top_k <= model.vocab_size:
    raise ValueError(f"top_k must be in [1, {model.vocab_size}] or None, got {top_k}.")
  graphdef, state = nnx.split(model)

  # The parameters are an argument, not a closure: constants would be baked into the program.
  @jax.jit
  def generate(state, prompt, key):
    model = nnx.merge(graphdef, state)
    logits, decode_state = model(prompt)

    def step(carry, key):
      decode_state, logits = carry
      token = sample_token(logits, key, temperature, top_k)
      decode_state, logits = model.step(decode_state, token)
      return (decode_state, logits), token

    _, tokens = jax.lax.scan(step, (decode_state, logits[:, -1]),
                             jax.random.split(key, length))
    return tokens.T

  def run(prompt, key):
    prompt = jnp.asarray(prompt, jnp.int32)
    if prompt.ndim != 2 or prompt.shape[1] < 1:
      raise ValueError(
          f"prompt must be token ids of shape (batch, prompt_len >= 1), got {prompt.shape}.")
    return generate(state, prompt, key)

  return run
