"""Text generation: the prompt in parallel mode (prefill), then one token at a time in step mode
(decode), each one jitted program.

The decoding state is the model's state: constant in size for the recurrent layers (each
layer's conv window and cell carry), so the cost per generated token does not grow with the
length of the text; attention's key-value cache is preallocated to a fixed number of positions
(`cache_size`), and a token costs in proportion to it. A text longer than the cache would be
seen through a sliding window, so the generator refuses it rather than quietly forgetting the
start of the prompt.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from minrnn.models.lm import LanguageModel, ModelState


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


def prefill(model: LanguageModel, prompt: jax.Array,
            chunk: int | None = None) -> tuple[ModelState, jax.Array]:
  """The prompt int `(batch, time)` in parallel mode -> `(state, scores)`, scores float32
  `(batch, vocab)` of the last position. With `chunk`, `chunk` tokens at a time with the state
  carried (the same result): attention's scores and Mamba's expanded inputs then grow with the
  chunk, not with the prompt."""
  batch, time = prompt.shape
  if chunk is None or time <= chunk:
    return model.prefill(prompt)
  # The first chunk starts fresh (the layers' fast path); whole chunks then run in a scan, so
  # the program does not grow with the prompt; a shorter last chunk runs on its own.
  state, scores = model.prefill(prompt[:, :chunk])
  whole = time // chunk * chunk
  if whole > chunk:
    chunks = prompt[:, chunk:whole].reshape(batch, -1, chunk).swapaxes(0, 1)
    state, scores = jax.lax.scan(lambda s, tokens: model.prefill(tokens, s), state, chunks)
    scores = scores[-1]
  if whole < time:
    state, scores = model.prefill(prompt[:, whole:], state)
  return state, scores


class Generator:
  """Generation from a model's parameters at construction, as two jitted programs.

    tokens = generator(prompt, key)                      # both, one call
    state, scores = generator.prefill(prompt)            # the prompt, in parallel
    tokens = generator.decode(state, scores, key)        # `length` tokens, one step each

  `prefill_program(params, prompt)` and `decode_program(params, state, scores, key)` are the
  jitted functions themselves, with `params` the model's `nnx.State` (`generator.params`), for
  timing and compiling ahead of time. The parameters are an argument, not a closure: constants
  would be baked into the program.
  """

  def __init__(self, model: LanguageModel, *, length: int, temperature: float = 1.0,
               top_k: int | None = None, prompt_chunk: int | None = None):
    if length < 1:
      raise ValueError(f"length must be >= 1 token, got {length}.")
    if not temperature >= 0 or temperature == float("inf"):  # NaN fails the comparison.
      raise ValueError(f"temperature must be a finite number >= 0, got {temperature}.")
    if top_k is not None and not 1 <= top_k <= model.vocab_size:
      raise ValueError(f"top_k must be in [1, {model.vocab_size}] or None, got {top_k}.")
    if prompt_chunk is not None and prompt_chunk < 1:
      raise ValueError(f"prompt_chunk must be >= 1 token or None, got {prompt_chunk}.")
    self.length = length
    self.capacity = model.context_capacity
    graphdef, self.params = nnx.split(model)

    def prefill_program(params, prompt):
      return prefill(nnx.merge(graphdef, params), prompt, prompt_chunk)

    def decode_program(params, state, scores, key):
      model = nnx.merge(graphdef, params)

      def step(carry, key):
        state, scores = carry
        token = sample_token(scores, key, temperature, top_k)
        state, scores = model.step(state, token)
        return (state, scores), token

      # The last token is sampled, not fed back: nothing reads the state after it.
      keys = jax.random.split(key, length)
      (_, scores), tokens = jax.lax.scan(step, (state, scores), keys[:-1])
      last = sample_token(scores, keys[-1], temperature, top_k)
      return jnp.concatenate([tokens.T, last[:, None]], axis=1)

    self.prefill_program = jax.jit(prefill_program)
    self.decode_program = jax.jit(decode_program)

  def check_prompt(self, prompt) -> jax.Array:
    """The prompt as int32 `(batch, prompt_len >= 1)`; a ValueError if it has another shape,
    or if prompt and continuation do not fit in the model's key-value cache."""
    prompt = jnp.asarray(prompt, jnp.int32)
    if prompt.ndim != 2 or prompt.shape[1] < 1:
      raise ValueError(
          f"prompt must be token ids of shape (batch, prompt_len >= 1), got {prompt.shape}.")
    # Every generated token but the last is fed back.
    needed = prompt.shape[1] + self.length - 1
    if self.capacity is not None and needed > self.capacity:
      raise ValueError(
          f"A prompt of {prompt.shape[1]} tokens and {self.length} generated ones need "
          f"{needed} positions, but the model's key-value cache holds {self.capacity}. Build "
          f"the model with model.cell_kwargs.cache_size >= {needed} (the cache is "
          "preallocated; `minrnn.sample` sizes it from the prompt and length), or generate "
          "less.")
    return prompt

  def prefill(self, prompt) -> tuple[ModelState, jax.Array]:
    """prompt int `(batch, prompt_len)` -> `(state, scores)` after its last token."""
    return self.prefill_program(self.params, self.check_prompt(prompt))

  def decode(self, state: ModelState, scores: jax.Array, key: jax.Array) -> jax.Array:
    """`length` tokens int32 `(batch, length)` sampled from `scores` on, one step each."""
    return self.decode_program(self.params, state, scores, key)

  def __call__(self, prompt, key: jax.Array) -> jax.Array:
    """prompt int `(batch, prompt_len >= 1)` and a PRNG key -> the generated tokens int32
    `(batch, length)`. The same key gives the same tokens."""
    return self.decode(*self.prefill(prompt), key)


def make_generator(model: LanguageModel, *, length: int, temperature: float = 1.0,
                   top_k: int | None = None, prompt_chunk: int | None = None) -> Generator:
  """A `Generator`: `(prompt, key) -> tokens` for `model`'s current parameters.

  Args:
    model: the language model.
    length: number of tokens to generate after the prompt.
    temperature: softmax temperature (0: greedy).
    top_k: sample among the k most likely tokens only (None: all).
    prompt_chunk: run the prompt this many tokens at a time (None: all at once); bounds the
      memory of attention's scores on long prompts.

  Returns:
    A function of a prompt int `(batch, prompt_len)` (prompt_len >= 1) and a PRNG key that
    returns the generated tokens int32 `(batch, length)`. The same key gives the same tokens.
    A model with a key-value cache (`model.context_capacity`) must hold prompt_len + length - 1
    positions, else calling it is a ValueError.
  """
  return Generator(model, length=length, temperature=temperature, top_k=top_k,
                   prompt_chunk=prompt_chunk)
