"""Log-probabilities of the targets alone, scored a chunk of positions at a time.

A language model's loss needs log p(target) at every position, not the `(positions, vocab)`
log-probabilities: at WikiText-103's batch of 64 x 768 words over 267,735 of them those are
53 GB, and their gradient as much again. `map_chunks` flattens the positions and scores
`chunk_size` of them at a time under `jax.checkpoint`, so the forward and the backward pass hold
a few `(chunk_size, vocab)` arrays at once. `target_log_probs` scores a full-softmax head that
way (the adaptive softmax brings its own chunk scorer); `scored_targets` is the language
models' `(log p(target), top)`, from full logits or from chunks.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

# An output head: `(..., features) -> (..., vocab)` scores of every token at each position.
ScoreFn = Callable[[jax.Array], jax.Array]
# h `(chunk, features)`, targets int `(chunk,)` -> a tuple of `(chunk,)` per-position scores.
ChunkFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, ...]]


def check_chunk_size(chunk_size: int, name: str = "chunk_size") -> None:
  """A ValueError naming the argument when `chunk_size` is below 1."""
  if chunk_size < 1:
    raise ValueError(f"{name} must be a positive number of positions, got {chunk_size}.")


def _check_targets(h: jax.Array, targets: jax.Array) -> None:
  if h.shape[:-1] != targets.shape:
    raise ValueError(
        f"h must be (..., features) with targets of its leading shape (...), got h "
        f"{tuple(h.shape)} and targets {tuple(targets.shape)}.")
  if not jnp.issubdtype(targets.dtype, jnp.integer):
    raise ValueError(f"targets must be integer ids, got {targets.dtype}.")


def map_chunks(h: jax.Array, targets: jax.Array, score_chunk: ChunkFn, chunk_size: int
               ) -> tuple[jax.Array, ...]:
  """Per-position scores of `(h, targets)`, computed `chunk_size` positions at a time.

  Args:
    h: `(..., features)` hidden states.
    targets: int `(...)` ids, the leading shape of `h`.
    score_chunk: maps h `(chunk, features)` and targets int `(chunk,)` to a tuple of
      `(chunk,)` arrays. It runs again in the backward pass (only `h` and the targets of each
      chunk are saved), so it should be a cheap head, not a whole model. Padding rows (zero
      states, target 0) fill the last chunk when `chunk_size` does not divide the positions.
    chunk_size: positions scored at once.

  Returns:
    The tuple `score_chunk` returns, each array of shape `(...)`.
  """
  _check_targets(h, targets)
  check_chunk_size(chunk_size)
  positions, features = targets.size, h.shape[-1]
  chunk = max(1, min(chunk_size, positions))
  num_chunks = -(-positions // chunk)
  pad = num_chunks * chunk - positions
  flat_h = jnp.pad(h.reshape(positions, features), ((0, pad), (0, 0)))
  flat_targets = jnp.pad(targets.reshape(positions), (0, pad))
  # Chunk k holds positions k, k + num_chunks, ...: a chunk takes rows from every part of
  # the flattened batch, so a batch split over devices keeps each chunk split the same way.
  chunked_h = flat_h.reshape(chunk, num_chunks, features).swapaxes(0, 1)
  chunked_targets = flat_targets.reshape(chunk, num_chunks).swapaxes(0, 1)
  # Recomputed in the backward pass: only h and the targets of each chunk are saved.
  score = jax.checkpoint(score_chunk, prevent_cse=False)
  outputs = jax.lax.map(lambda args: tuple(score(*args)), (chunked_h, chunked_targets))
  unchunk = lambda x: x.swapaxes(0, 1).reshape(-1)[:positions].reshape(targets.shape)
  return tuple(unchunk(x) for x in outputs)


def target_log_probs(h: jax.Array, targets: jax.Array, logits: ScoreFn, *, chunk_size: int
                     ) -> tuple[jax.Array, jax.Array]:
  """log p(target) and the largest log-probability at each position, without the
  `(..., vocab)` tensor: equal to `log_softmax(logits(h))` at the targets and its maximum,
  gradients included.

  Args:
    h: `(..., features)` hidden states.
    targets: int `(...)` ids in `[0, vocab)`, the leading shape of `h`. Ids outside that range
      (e.g. at positions a loss weighs by 0) give a finite, meaningless value.
    logits: the output head, `(chunk, features) -> (chunk, vocab)` logits (cast to float32).
    chunk_size: positions scored at once (see `map_chunks`).

  Returns:
    float32 `(...)` log p(target) and float32 `(...)` maxima (the target is a most likely
    token where the two are equal).
  """

  def score_chunk(h, targets):
    values = logits(h).astype(jnp.float32)
    ids = jnp.clip(targets, 0, values.shape[-1] - 1)
    target = jnp.take_along_axis(values, ids[:, None], axis=-1)[:, 0]
    # As optax's cross-entropy computes it: the normaliser subtracted from two entries only.
    norm = jax.nn.logsumexp(values, axis=-1)
    return target - norm, jnp.max(values, axis=-1) - norm

  return map_chunks(h, targets, score_chunk, chunk_size)


def scored_targets(h: jax.Array, targets: jax.Array, logits: ScoreFn,
                   chunk_size: int | None) -> tuple[jax.Array, jax.Array]:
  """A language model's `(log_probs, top)` from its last hidden states and output head.

  Args:
    h: `(batch, time, features)` hidden states.
    targets: int `(batch, time)` next-token ids in `[0, vocab)` (outside it the full logits
      give NaN, as optax does, and the chunks a finite, meaningless value).
    logits: the head, `(..., features) -> (..., vocab)` float32 logits.
    chunk_size: None scores all positions at once from the full logits (the training loop's
      cross-entropy on `model(...)`, the same values bit for bit); a number of positions
      scores them in chunks through `target_log_probs`, never holding `(batch, time, vocab)`.

  Returns:
    log p(target) float32 `(batch, time)` and top bool `(batch, time)`: whether the target is
    a most likely token (the first most likely one with full logits, any one in chunks).
  """
  if chunk_size is None:
    _check_targets(h, targets)
    full = logits(h)
    return (-optax.softmax_cross_entropy_with_integer_labels(full, targets),
            jnp.argmax(full, -1) == targets)
  log_probs, best = target_log_probs(h, targets, logits, chunk_size=chunk_size)
  return log_probs, log_probs >= best
