"""Tests of the fused-gate Pallas linear-scan kernels (`kernels/linear_scan/fused_gates.py`).

On CPU the kernels run in Pallas interpret mode at tiny sizes; the same checks run compiled on a
GPU (marked `gpu`, skipped without one). Each case is compared with a float64 NumPy oracle (the
gates and their derivatives by hand, the scan and its adjoint from `tests/oracle.py`) and with
JAX's autodiff through the pure-JAX reference. Errors are relative: ||x - ref|| / ||ref||.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cuda_lowering
import oracle
from minrnn.kernels.linear_scan import BlockConfig, gated_linear_scan, reference
from minrnn.cells import LinearRecurrentCell, MinGRU, MinLSTM, mingru, minlstm
from minrnn.ops import DEFAULT_ORDER, linear_scan, resolve_name

# As for the plain kernel: float32 lands near 1e-7; bfloat16 inputs and outputs (and the saved
# bfloat16 states the backward kernel reads) carry relative rounding 2**-9 per element.
TOL = {jnp.float32: 1e-5, jnp.bfloat16: 1e-2}

INTERPRET = [True, pytest.param(False, marks=pytest.mark.gpu, id="compiled")]

GATES = {
    "mingru": mingru.gate_coefficients,
    "minlstm": functools.partial(minlstm.gate_coefficients, normalize=True),
    "minlstm-unnormalized": functools.partial(minlstm.gate_coefficients, normalize=False),
}
NUM_INPUTS = {"mingru": 2, "minlstm": 3, "minlstm-unnormalized": 3}


def _rel(x, ref):
  x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
  assert np.all(np.isfinite(x)), "non-finite values in the kernel's result"
  return np.linalg.norm(x - ref) / np.linalg.norm(ref)


def _oracle_gates(kind, pre):
  """float64 `(a, b)` and their elementwise derivatives `da[p] = ∂a/∂pre_p`, `db[p]`."""
  sigmoid, g = oracle.sigmoid, oracle.g
  h_tilde = pre[-1]
  s = sigmoid(h_tilde)
  dg = np.where(h_tilde >= 0, 1.0, s * (1 - s))
  zero = np.zeros_like(h_tilde)
  if kind == "mingru":
    z = sigmoid(pre[0])
    dz = z * (1 - z)
    return 1 - z, z * g(h_tilde), [-dz, zero], [dz * g(h_tilde), z * dg]
  f, i = sigmoid(pre[0]), sigmoid(pre[1])
  df, di = f * (1 - f), i * (1 - i)
  if kind == "minlstm":
    total = f + i
    a, i_scaled = f / total, i / total
    da = [df * i / total**2, -di * f / total**2, zero]
    di_scaled = [-df * i / total**2, di * f / total**2]
  else:
    a, i_scaled = f, i
    da, di_scaled = [df, zero, zero], [zero, di]
  db = [d * g(h_tilde) for d in di_scaled] + [i_scaled * dg]
  return a, i_scaled * g(h_tilde), da, db


def _oracle(kind, pre, h0, dh, dh_last, lengths, reverse):
  """float64 forward and backward of the gated scan: `(h, h_last, dpre, dh0)`."""
  pre, h0, dh, dh_last = (np.asarray(x, np.float64) for x in (pre, h0, dh, dh_last))
  a, b, da_dpre, db_dpre = _oracle_gates(kind, [pre[:, :, p] for p in range(pre.shape[2])])
  valid = np.ones(a.shape, bool)
  if lengths is not None:
    valid = np.broadcast_to(
        (np.arange(a.shape[1])[None, :] < np.asarray(lengths)[:, None])[..., None], a.shape)
  # Padded steps keep the state (a = 1, b = 0); their outputs are constant zeros.
  a, b, dh = np.where(valid, a, 1.0), np.where(valid, b, 0.0), np.where(valid, dh, 0.0)
  h, h_last = oracle.linear_scan(a, b, h0, reverse)
  da, db, dh0 = oracle.linear_scan_vjp(a, b, h0, dh, dh_last, reverse)
  dpre = np.stack([np.where(valid, da * da_p + db * db_p, 0.0)
                   for da_p, db_p in zip(da_dpre, db_dpre)], axis=2)
  return np.where(valid, h, 0.0), h_last, dpre, dh0


def _inputs(kind, shape, dtype, seed):
  batch, time, features = shape
  ks = jax.random.split(jax.random.key(seed), 4)
  # Spread 2: gates from near 0 to near 1, and candidates on both sides of g's kink at 0.
  pre = (2.0 * jax.random.normal(ks[0], (batch, time, NUM_INPUTS[kind], features))).astype(dtype)
  h0 = jax.random.normal(ks[1], (batch, features), jnp.float32)
  dh = jax.random.normal(ks[2], shape).astype(dtype)
  dh_last = jax.random.normal(ks[3], (batch, features), jnp.float32)
  return pre, h0, dh, dh_last


@functools.lru_cache(maxsize=None)
def _kernel_vjp(kind, reverse, interpret, config):
  @jax.jit
  def fn(pre, h0, lengths, dh, dh_last):
    out, vjp = jax.vjp(
        lambda pre, h0: gated_linear_scan(
            pre, h0, gates=GATES[kind], seq_lengths=lengths, reverse=reverse,
            interpret=interpret, config=config, backward_config=config,
        ),
        pre, h0,
    )
    return out, vjp((dh, dh_last))

  return fn


@functools.lru_cache(maxsize=None)
def _reference_vjp(kind, reverse):
  @jax.jit
  def fn(pre, h0, lengths, dh, dh_last):
    out, vjp = jax.vjp(
        lambda pre, h0: reference.gated_linear_scan(
            pre, h0, gates=GATES[kind], seq_lengths=lengths, reverse=reverse),
        pre, h0,
    )
    return out, vjp((dh, dh_last))

  return fn


def _check_case(kind, shape, dtype, lengths, reverse, interpret, config=None, seed=0):
  pre, h0, dh, dh_last = _inputs(kind, shape, dtype, seed)
  lengths = None if lengths is None else jnp.asarray(lengths, jnp.int32)
  (h, h_last), (dpre, dh0) = _kernel_vjp(kind, reverse, interpret, config)(
      pre, h0, lengths, dh, dh_last)
  assert h.dtype == dtype and h.shape == shape
  assert h_last.dtype == jnp.float32 and h_last.shape == h0.shape
  assert dpre.dtype == dtype and dpre.shape == pre.shape and dh0.dtype == jnp.float32
  tol = TOL[dtype]
  results = (h, h_last, dpre, dh0)
  names = ("h", "h_last", "dpre", "dh0")
  for name, got, want in zip(names, results, _oracle(kind, pre, h0, dh, dh_last, lengths,
                                                       reverse)):
    assert _rel(got, want) < tol, f"{name} differs from the float64 oracle"
  (h_ref, h_last_ref), grads_ref = _reference_vjp(kind, reverse)(pre, h0, lengths, dh, dh_last)
  for name, got, want in zip(names, results, (h_ref, h_last_ref, *grads_ref)):
    assert _rel(got, want) < tol, f"{name} differs from the JAX reference"
  if lengths is not None:
    padded = np.arange(shape[1])[None, :] >= np.asarray(lengths)[:, None]
    assert np.all(np.asarray(h)[padded] == 0), "padded outputs must be exactly zero"
    assert np.all(np.asarray(dpre)[padded] == 0), "padded steps must get no gradient"
    empty = np.asarray(lengths) == 0
    np.testing.assert_array_equal(np.asarray(h_last)[empty], np.asarray(h0)[empty])
    np.testing.assert_array_equal(np.asarray(dh0)[empty], np.asarray(dh_last)[empty])


# (gates, dtype, (batch, time, features), seq_lengths, reverse). With blocks of 8 features and
# chunks of 4 steps (short chunks: less to compile in interpret mode), T = 21 runs five chunks
# and a tail step, T = 16 no tail; D = 12 and D = 20 mask half of their last feature block.
CASES = {
    "mingru-lengths": ("mingru", jnp.float32, (3, 21, 20), (21, 13, 0), False),
    "minlstm-reverse-lengths": ("minlstm", jnp.float32, (2, 21, 12), (21, 9), True),
    "minlstm-unnormalized": ("minlstm-unnormalized", jnp.float32, (2, 16, 12), None, False),
    "mingru-bfloat16-reverse": ("mingru", jnp.bfloat16, (2, 21, 12), None, True),
}


@pytest.mark.parametrize("interpret", INTERPRET)
@pytest.mark.parametrize("case", CASES)
def test_kernel_matches_oracle_and_reference(case, interpret):
  kind, dtype, shape, lengths, reverse = CASES[case]
  _check_case(kind, shape, dtype, lengths, reverse, interpret, BlockConfig(block_d=8, chunk=4))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_compiled_default_blocks_at_benchmark_width(kind, dtype):
  # The default block shapes (shorter chunks for more loads per step), a long sequence, a
  # width the blocks don't divide, and padding.
  _check_case(kind, (3, 1000, 300), dtype, (1000, 777, 1), False, False, seed=4)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_kernels_lower_for_gpu_on_any_machine(kind):
  # Pallas' Triton lowering runs when the program is lowered for CUDA, which needs no GPU: a gate
  # op that Triton cannot express fails here (compiling to GPU code still needs the device).
  pre = jnp.ones((2, 40, NUM_INPUTS[kind], 48), jnp.bfloat16)

  def fwd_bwd(pre, lengths):
    out, vjp = jax.vjp(lambda pre: gated_linear_scan(
        pre, gates=GATES[kind], seq_lengths=lengths, reverse=True, interpret=False), pre)
    return vjp(out)

  text = cuda_lowering.lowered_text(fwd_bwd, pre, jnp.array([40, 7]))
  assert text.count("xla.gpu.triton") == 2  # The forward and backward kernels.


CELLS = {
    "mingru": lambda **kw: MinGRU(3, 5, rngs=nnx.Rngs(0), **kw),
    "minlstm": lambda **kw: MinLSTM(3, 5, rngs=nnx.Rngs(0), **kw),
}


@functools.lru_cache(maxsize=None)
def _cell_loss(name, implementation, reverse):
  graphdef, params = nnx.split(CELLS[name]())

  @jax.jit
  def fn(params, x, h0, lengths, w):
    def loss(params, x, h0):
      carry, y = nnx.merge(graphdef, params).scan(
          x, h0, seq_lengths=lengths, reverse=reverse, implementation=implementation)
      return jnp.sum(y * w) + jnp.sum(carry ** 2), (carry, y)

    return jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(params, x, h0)

  return fn, params


@pytest.mark.parametrize("name,lengths,reverse", [
    ("mingru", (11, 6), True),
    ("minlstm", None, False),
])
def test_cell_fused_path_matches_associative(name, lengths, reverse):
  # Runs the kernels compiled on a GPU and interpreted elsewhere (the platform default).
  ks = jax.random.split(jax.random.key(7), 3)
  x = 2.0 * jax.random.normal(ks[0], (2, 11, 3))
  h0 = jnp.exp(jax.random.normal(ks[1], (2, 5)))
  w = jax.random.normal(ks[2], (2, 11, 5))
  lengths = None if lengths is None else jnp.asarray(lengths)
  results = {}
  for implementation in ("pallas_fused", "associative"):
    fn, params = _cell_loss(name, implementation, reverse)
    results[implementation] = fn(params, x, h0, lengths, w)
  (_, (carry, y)), grads = results["pallas_fused"]
  (_, (carry_ref, y_ref)), grads_ref = results["associative"]
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry, carry_ref, rtol=1e-5, atol=1e-6)
  flat, flat_ref = jax.tree.leaves(grads), jax.tree.leaves(grads_ref)
  assert len(flat) == 4  # kernel, bias, x, h0
  for got, want in zip(flat, flat_ref):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_fused_path_is_opt_in_and_validated_by_the_dispatcher():
  assert all("pallas_fused" not in order for order in DEFAULT_ORDER.values())
  assert resolve_name(None, platform="gpu") == "pallas_triton"
  assert resolve_name("pallas_fused") == "pallas_fused"
  with pytest.raises(ValueError, match="pallas_fused"):
    resolve_name("pallas_fuse")
  a = jnp.full((1, 3, 2), 0.5)
  with pytest.raises(ValueError, match="cannot scan given coefficients"):
    linear_scan(a, a, implementation="pallas_fused")


def test_cell_without_gates_is_refused():
  class Decay(LinearRecurrentCell):
    num_projections = 1

    def coefficients(self, x):
      (k,) = self.projections(x)
      return jnp.full_like(k, 0.5), k

  cell = Decay(3, 4, rngs=nnx.Rngs(0))
  x = jnp.ones((1, 2, 3))
  assert cell.scan(x, implementation="associative")[1].shape == (1, 2, 4)
  with pytest.raises(ValueError, match="no fused gates"):
    cell.scan(x, implementation="pallas_fused")


def test_bad_inputs_raise_clear_errors():
  gates = GATES["mingru"]
  pre = jnp.ones((2, 5, 2, 4))
  with pytest.raises(ValueError, match=r"\(batch, time, num_inputs, features\)"):
    gated_linear_scan(pre[:, :, 0], gates=gates, interpret=True)
  with pytest.raises(TypeError, match="float32 or bfloat16"):
    gated_linear_scan(pre.astype(jnp.int32), gates=gates, interpret=True)
  with pytest.raises(ValueError, match="h0 must have shape"):
    gated_linear_scan(pre, jnp.ones((2, 5)), gates=gates, interpret=True)
  with pytest.raises(ValueError, match="seq_lengths must be integers"):
    gated_linear_scan(pre, gates=gates, seq_lengths=jnp.ones((3,), jnp.int32), interpret=True)
  with pytest.raises(ValueError, match="time axis is empty"):
    gated_linear_scan(pre[:, :0], gates=gates, interpret=True)
