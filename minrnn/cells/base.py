"""Base classes shared by the cells: linear recurrences and sequential (traditional) cells.

A **linear recurrent cell** computes `h_t = a_t ⊙ h_{t-1} + b_t` where `a_t` and `b_t` depend on
`x_t` alone. A subclass only says how to get `(a, b)` from `x` (`gates`, an elementwise map from
its projections, or `coefficients`; optionally the more accurate `log_coefficients`); this base
gives it both execution modes:

- `__call__(carry, x) -> (carry, y)`: one step, Flax's cell convention, so `flax.nnx.RNN` and
  `flax.nnx.Bidirectional` accept the cell;
- `scan(x, carry=None, *, seq_lengths=None, reverse=False, implementation=None)`: a whole
  sequence at once through `minrnn.ops.linear_scan`.

The mode is chosen by which method is called, never by the sequence length. A cell with `gates`
can also run `scan(..., implementation="pallas_fused")`, which computes the gates inside the
Pallas scan kernel (`kernels/linear_scan/fused_gates.py`) so that `a`, `b` never go through
device memory.

Every cell of minrnn (these, SRU, the GRU/LSTM baselines) follows `ScanCell`; the `Recurrent`
layer of `minrnn.layers` wraps any of them into the temporal-layer interface of the models.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import initializers
from flax.typing import Dtype, Initializer

from minrnn.ops import check_sequence, flip_sequences, padding_mask
from minrnn.ops.linear_scan import ImplementationName, Inputs, linear_scan, log_linear_scan
from minrnn.ops.linear_scan import resolve as resolve_implementation

# Stands in for log(0) at padded steps: exp() of it is exactly 0 and, unlike -inf, it keeps
# cumulative log-sum-exp gradients finite.
_LOG_ZERO = -1e30

# Metadata (True) on the parameters of a linear recurrent cell's input projection, the official
# minRNN code's `to_hidden_and_gate`, which its optimizer leaves out of weight decay
# (`minrnn.training.optimizer`, `weight_decay_on="all_but_recurrence"`).
RECURRENCE_PROJECTION = "recurrence_projection"


class ScanCell(Protocol):
  """The cell contract: Flax's recurrent-cell convention plus a whole-sequence `scan`.

  Attributes:
    in_features: input width.
    out_features: output width (the state's, or both directions' for a bidirectional SRU).
  """

  in_features: int
  out_features: int

  def initialize_carry(self, input_shape: tuple[int, ...], rngs: Any = None) -> Any:
    """The state before the first step for inputs `input_shape = (batch, in_features)`."""

  def __call__(self, carry: Any, x: jax.Array) -> tuple[Any, jax.Array]:
    """One step: x `(batch, in_features)` -> `(carry, y)`, y `(batch, out_features)`."""

  def scan(self, x: jax.Array, carry: Any = None, *, seq_lengths: jax.Array | None = None,
           reverse: bool = False, implementation: Any = None, rngs: nnx.Rngs | None = None
           ) -> tuple[Any, jax.Array]:
    """A whole sequence x `(batch, time, in_features)` -> `(carry, y)`, y
    `(batch, time, out_features)`; padded steps (t >= seq_lengths) keep the carry and give
    zero outputs; `rngs` turns on the cell's own dropout, if it has any."""


def _check_step_input(x: jax.Array, features: int) -> None:
  if x.ndim < 1 or x.shape[-1] != features:
    raise ValueError(
        f"Step input must have shape (..., {features}), got {tuple(x.shape)}. For a whole "
        "sequence (batch, time, features) call .scan(x) instead."
    )


class LinearRecurrentCell(nnx.RNNCellBase):
  """`h_t = a_t ⊙ h_{t-1} + b_t` with `(a_t, b_t)` computed from `x_t` by the subclass.

  A subclass sets `num_projections` and says how `(a, b)` follow from `self.projections(x)`:
  `num_projections` float32 arrays `(..., hidden_features)` that one matmul produces. Either
  `gates` returns an elementwise map from them to `(a, b)` (then `coefficients` applies it and
  the `"pallas_fused"` path can compute it inside the scan kernel), or `coefficients` is
  overridden. Where there is an accurate log-space form, `log_coefficients` gives it.

  Args:
    in_features: input width.
    hidden_features: state (and output) width.
    use_bias: whether the projection has a bias. The projection's parameters carry the
      metadata `RECURRENCE_PROJECTION`.
    dtype: compute dtype of the projection and of the outputs (None: from the inputs).
      Coefficients and states are float32 whatever it is.
    param_dtype: parameter dtype.
    kernel_init, bias_init: initializers of the joint projection
      `(in_features, num_projections * hidden_features)`.
    learn_initial_state: learn a positive initial state (`softplus` of a parameter) instead of
      starting from zeros.
    implementation: default `minrnn.ops.linear_scan` path of `scan` (None: platform default).
    rngs: parameter initialisation keys.
  """

  num_projections: int
  num_feature_axes = 1

  def __init__(
      self,
      in_features: int,
      hidden_features: int,
      *,
      use_bias: bool = True,
      dtype: Dtype | None = None,
      param_dtype: Dtype = jnp.float32,
      kernel_init: Initializer = initializers.lecun_normal(),
      bias_init: Initializer = initializers.zeros_init(),
      learn_initial_state: bool = False,
      implementation: str | None = None,
      rngs: nnx.Rngs,
  ):
    self.in_features = in_features
    self.hidden_features = hidden_features
    self.dtype = dtype
    self.implementation = implementation
    tag = {RECURRENCE_PROJECTION: True}
    self.proj = nnx.Linear(
        in_features, self.num_projections * hidden_features, use_bias=use_bias, dtype=dtype,
        param_dtype=param_dtype, kernel_init=kernel_init, bias_init=bias_init, rngs=rngs,
        kernel_metadata=tag, bias_metadata=tag)
    # A learned state is stored as a pre-activation and passed through a softplus so that it
    # stays positive, as the log-space path requires.
    self.initial_state = (
        nnx.Param(jnp.zeros((hidden_features,), param_dtype)) if learn_initial_state else None)

  @property
  def out_features(self) -> int:
    return self.hidden_features

  def projections(self, x: jax.Array) -> list[jax.Array]:
    """The `num_projections` float32 pre-activations `(..., hidden_features)` of `x`."""
    return jnp.split(self.proj(x).astype(jnp.float32), self.num_projections, axis=-1)

  def gates(self) -> Callable[..., tuple[jax.Array, jax.Array]] | None:
    """The elementwise map from the `num_projections` pre-activations to `(a, b)`, or None.

    It takes float32 arrays of one shape and returns float32 `(a, b)` of that shape, written
    with `jax.numpy` so that it can also run (and be differentiated) inside the Pallas kernel
    of the `"pallas_fused"` path. None (the default) for cells that override `coefficients`.
    """
    return None

  def coefficients(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(a, b)`, float32 `(..., hidden_features)`, from inputs `x` `(..., in_features)`."""
    gates = self.gates()
    if gates is None:
      raise NotImplementedError(
          f"{type(self).__name__} must define gates() or override coefficients(x).")
    return gates(*self.projections(x))

  def log_coefficients(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(log a, log b)`; override with a direct log-space form where one exists."""
    a, b = self.coefficients(x)
    return jnp.log(a), jnp.log(b)

  def initialize_carry(self, input_shape: tuple[int, ...], rngs: Any = None) -> jax.Array:
    """The initial state, float32 `input_shape[:-1] + (hidden_features,)`.

    Zeros, or the learned initial state broadcast over the batch when the cell has one.
    `rngs` is accepted for Flax's cell interface and not used.
    """
    del rngs
    shape = tuple(input_shape[:-1]) + (self.hidden_features,)
    if self.initial_state is None:
      return jnp.zeros(shape, jnp.float32)
    h0 = jax.nn.softplus(self.initial_state[...].astype(jnp.float32))
    return jnp.broadcast_to(h0, shape)

  def _output_dtype(self, x: jax.Array) -> Dtype:
    return self.dtype or x.dtype

  def __call__(self, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One step. carry: float32 `(..., hidden)`; x: `(..., in_features)`.

    Returns the new carry (float32) and the output `y = h` in the compute dtype.
    """
    _check_step_input(x, self.in_features)
    a, b = self.coefficients(x)
    h = a * carry.astype(jnp.float32) + b
    return h, h.astype(self._output_dtype(x))

  def scan(
      self,
      x: jax.Array,
      carry: jax.Array | None = None,
      *,
      seq_lengths: jax.Array | None = None,
      reverse: bool = False,
      implementation: ImplementationName = None,
      rngs: nnx.Rngs | None = None,
  ) -> tuple[jax.Array, jax.Array]:
    """A whole sequence in parallel.

    Args:
      x: `(batch, time, in_features)`.
      carry: float32 `(batch, hidden_features)` state before the first step (before the last
        when `reverse`); `initialize_carry` if None.
      seq_lengths: optional int `(batch,)`: the carry stops at each row's end, padded outputs
        are zero, and `reverse` runs over each row's valid part only.
      reverse: process time from the end to the start.
      implementation: a `minrnn.ops.linear_scan` path (name or spec); defaults to the cell's,
        then the platform's.
      rngs: accepted for the cell interface (`ScanCell`); these cells have no dropout.

    Returns:
      `(carry, y)`: the final float32 state `(batch, hidden_features)` and all states
      `(batch, time, hidden_features)` in the compute dtype.
    """
    del rngs
    check_sequence(x, self.in_features, seq_lengths=seq_lengths)
    if carry is None:
      carry = self.initialize_carry((x.shape[0], self.in_features))
    path = resolve_implementation(
        self.implementation if implementation is None else implementation)
    if path.inputs is Inputs.GATES:
      # The kernel handles padding and reverse itself: no flipping needed.
      return self._fused_scan(x, carry, seq_lengths, reverse)
    if reverse and seq_lengths is not None:
      # Reversing within each row keeps the padding at the end, where the mask expects it.
      carry, y = self._scan(flip_sequences(x, seq_lengths), carry, seq_lengths, False, path)
      return carry, flip_sequences(y, seq_lengths)
    return self._scan(x, carry, seq_lengths, reverse, path)

  def _scan(self, x, carry, seq_lengths, reverse, path):
    """`scan` on a resolved path, padding at the end of each row."""
    mask = None if seq_lengths is None else padding_mask(seq_lengths, x.shape[1])[..., None]
    carry = carry.astype(jnp.float32)
    if path.inputs is Inputs.LOGS:
      log_a, log_b = self.log_coefficients(x)
      # Fold the carry into the first step in linear space: a zero carry has no logarithm.
      first = -1 if reverse else 0
      log_b = log_b.at[:, first].set(
          jnp.log(jnp.exp(log_a[:, first]) * carry + jnp.exp(log_b[:, first])))
      if mask is not None:
        log_a = jnp.where(mask, log_a, 0.0)
        log_b = jnp.where(mask, log_b, _LOG_ZERO)
      log_h, _ = log_linear_scan(log_a, log_b, reverse=reverse, implementation=path.name)
      h = jnp.exp(log_h)
      h_last = h[:, 0] if reverse else h[:, -1]
    else:
      a, b = self.coefficients(x)
      if mask is not None:
        a = jnp.where(mask, a, 1.0)
        b = jnp.where(mask, b, 0.0)
      h, h_last = linear_scan(a, b, carry, reverse=reverse,
                              implementation=path.mesh or path.name)
    if mask is not None:
      h = jnp.where(mask, h, 0.0)
    return h_last, h.astype(self._output_dtype(x))

  def _fused_scan(self, x, carry, seq_lengths, reverse):
    """`scan` on the `"pallas_fused"` path: the gates are computed inside the kernel."""
    gates = self.gates()
    if gates is None:
      raise ValueError(
          f"{type(self).__name__} has no fused gates (its gates() is None), so it cannot run "
          "implementation='pallas_fused'. Choose a linear-scan path such as 'pallas' or "
          "'associative', or give the cell a gates() method.")
    # Imported on first use, as minrnn.ops does for "pallas": CPU-only users never need Pallas.
    from minrnn.kernels.linear_scan import gated_linear_scan

    batch, time, _ = x.shape
    # The joint projection split by a free reshape (no copies), in its compute dtype: bfloat16
    # pre-activations stay bfloat16 in memory, and the kernel computes the gates in float32.
    pre = self.proj(x).reshape(batch, time, self.num_projections, self.hidden_features)
    h, h_last = gated_linear_scan(
        pre, carry, gates=gates, seq_lengths=seq_lengths, reverse=reverse)
    return h_last, h.astype(self._output_dtype(x))


class SequentialScan:
  """Adds `scan` to a step-only Flax cell by running its `__call__` with `jax.lax.scan`.

  Same signature and padding semantics as `LinearRecurrentCell.scan`; the only path is
  `"sequential"`. Used for the traditional GRU and LSTM baselines.
  """

  @property
  def out_features(self) -> int:
    return self.hidden_features

  def initialize_carry(self, input_shape, rngs=None):
    """Flax's initial carry; keys are optional, as they are for minrnn's own cells."""
    # Flax's cells ask for keys even for their default all-zeros carry.
    return super().initialize_carry(input_shape, nnx.Rngs(0) if rngs is None else rngs)

  def scan(self, x, carry=None, *, seq_lengths=None, reverse=False, implementation=None,
           rngs=None):
    """See `LinearRecurrentCell.scan`; the carry may be a pytree (the LSTM's `(c, h)`)."""
    del rngs  # No dropout in these cells.
    if implementation not in (None, "sequential"):
      raise ValueError(
          f"{type(self).__name__} only runs sequentially; got implementation="
          f"{implementation!r}. Pass None or 'sequential'."
      )
    check_sequence(x, self.in_features, seq_lengths=seq_lengths)
    if carry is None:
      carry = self.initialize_carry((x.shape[0], self.in_features))
    if reverse:
      x = flip_sequences(x, seq_lengths)
    mask = (jnp.ones(x.shape[:2], bool) if seq_lengths is None
            else padding_mask(seq_lengths, x.shape[1]))

    def step(carry, inputs):
      x_t, valid = inputs
      new_carry, y = self(carry, x_t)
      valid = valid[:, None]
      new_carry = jax.tree.map(lambda n, o: jnp.where(valid, n, o), new_carry, carry)
      return new_carry, jnp.where(valid, y, 0)

    carry, y = jax.lax.scan(step, carry, (jnp.swapaxes(x, 0, 1), mask.T))
    y = jnp.swapaxes(y, 0, 1)
    if reverse:
      y = flip_sequences(y, seq_lengths)
    return carry, y
