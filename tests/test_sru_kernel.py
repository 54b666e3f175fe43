"""SRU recurrence: Pallas kernel (interpreted on CPU) == lax.scan reference == float64 NumPy loop.

Values, final states and the gradients of every input (u, x, v_f/v_r, biases, c0) are checked,
for one and two directions, k = 3 and 4, reversed time, padded rows, `use_tanh` and no highway
term. The oracle's gradients are central differences of the float64 loop along random
directions.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cuda_lowering
import oracle
from minrnn.kernels.sru import KernelConfig
from minrnn.ops.sru import resolve, sru_recurrence

# Small blocks and chunks keep interpret mode quick and still exercise the chunked time loop
# (two chunks of 2 steps and a remainder step for T = 5) and several feature blocks.
SMALL = KernelConfig(block_features=4, time_chunk=2)
ARGS = ("u", "x", "weight_c", "bias", "c0")


def make_inputs(batch, num_steps, directions, k, hidden, seed=0, dtype=jnp.float32,
                has_skip_term=True):
  keys = jax.random.split(jax.random.key(seed), 5)
  return {
      "u": jax.random.normal(keys[0], (batch, num_steps, directions, k, hidden), dtype),
      "x": (jax.random.normal(keys[1], (batch, num_steps, directions, hidden), dtype)
            if k == 3 and has_skip_term else None),
      "weight_c": 0.7 * jax.random.normal(keys[2], (directions, 2, hidden)),
      "bias": 0.5 * jax.random.normal(keys[3], (directions, 2, hidden)),
      "c0": jax.random.normal(keys[4], (batch, directions, hidden)),
  }


def loss_terms(h, c_last):
  """A loss whose gradient reaches every output element with a distinct weight."""
  weights = jnp.cos(jnp.arange(h.size, dtype=jnp.float32)).reshape(h.shape)
  return jnp.sum(h.astype(jnp.float32) * weights) + jnp.sum(jnp.sin(c_last))


def oracle_loss(inputs, lengths, form):
  h, c_last = oracle.sru(**inputs, lengths=lengths, **form)
  weights = np.cos(np.arange(h.size, dtype=np.float32)).astype(np.float64).reshape(h.shape)
  return np.sum(h * weights) + np.sum(np.sin(c_last))


_LOSS_AND_GRAD = {}


def loss_and_grad(implementation, form, config=SMALL, interpret=None):
  """Jitted (loss, grads) of the recurrence; cached so cases of one shape compile once.

  form: `sru_recurrence`'s scale_x, reverse, use_tanh and has_skip_term.
  """
  key = (implementation, tuple(sorted(form.items())), config, interpret)
  if key not in _LOSS_AND_GRAD:

    def loss(inputs, lengths):
      h, c_last = sru_recurrence(
          inputs["u"], inputs["x"], inputs["weight_c"], inputs["bias"], inputs["c0"], lengths,
          implementation=implementation, interpret=interpret, config=config, **form)
      return loss_terms(h, c_last), (h, c_last)

    _LOSS_AND_GRAD[key] = jax.jit(jax.value_and_grad(loss, has_aux=True))
  return _LOSS_AND_GRAD[key]


def directional_oracle(inputs, lengths, form, name, seed, eps=1e-6):
  """Central difference of the float64 loss along a random direction of input `name`."""
  base = {k: None if v is None else np.asarray(v, np.float64) for k, v in inputs.items()}
  direction = np.random.default_rng(seed).standard_normal(base[name].shape)
  plus, minus = dict(base), dict(base)
  plus[name] = base[name] + eps * direction
  minus[name] = base[name] - eps * direction
  slope = (oracle_loss(plus, lengths, form) - oracle_loss(minus, lengths, form)) / (2 * eps)
  return direction, slope


CASES = [
    # (directions, k, reverse, lengths, use_tanh, has_skip_term)
    (1, 3, False, (5, 3), False, True),
    (2, 4, False, (5, 2), False, True),
    (1, 4, True, (4, 5), False, True),
    (2, 3, True, (5, 5), False, True),
    (2, 4, False, (5, 3), True, True),
    (1, 3, True, (5, 4), True, False),
    (2, 3, False, (4, 5), False, False),
]


@pytest.mark.parametrize("directions,k,reverse,lengths,use_tanh,has_skip_term", CASES)
def test_kernel_reference_and_oracle_agree(directions, k, reverse, lengths, use_tanh,
                                           has_skip_term):
  batch, num_steps, hidden = 2, 5, 8
  form = dict(scale_x=1.3, reverse=reverse, use_tanh=use_tanh, has_skip_term=has_skip_term)
  inputs = make_inputs(batch, num_steps, directions, k, hidden, seed=directions * 10 + k,
                       has_skip_term=has_skip_term)
  lengths = jnp.asarray(lengths)
  h_ref, c_ref = oracle.sru(**inputs, lengths=np.asarray(lengths), **form)

  results = {}
  for implementation in ("pallas", "sequential"):
    (_, (h, c_last)), grads = loss_and_grad(implementation, form)(inputs, lengths)
    np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-5, err_msg=implementation)
    np.testing.assert_allclose(c_last, c_ref, rtol=1e-5, atol=1e-5, err_msg=implementation)
    results[implementation] = grads

  for name in ARGS:
    if inputs[name] is None:
      assert results["pallas"][name] is None
      continue
    np.testing.assert_allclose(results["pallas"][name], results["sequential"][name],
                               rtol=1e-4, atol=1e-5, err_msg=name)
    direction, slope = directional_oracle(inputs, np.asarray(lengths), form, name,
                                          seed=len(name))
    np.testing.assert_allclose(np.sum(np.asarray(results["pallas"][name]) * direction), slope,
                               rtol=1e-4, atol=1e-4, err_msg=name)
  # Padded steps output zero and get no gradient through u.
  for b, n in enumerate(np.asarray(lengths)):
    assert not np.any(np.asarray(results["pallas"]["u"])[b, n:])


def test_continuation_equals_one_pass():
  inputs = make_inputs(2, 5, 1, 3, 8, seed=3)
  whole = sru_recurrence(**inputs, implementation="pallas", config=SMALL)
  # The halves run the loop without prefetching, so both loop forms are checked.
  config = KernelConfig(block_features=4, time_chunk=2, prefetch=False)
  first = {**inputs, "u": inputs["u"][:, :3], "x": inputs["x"][:, :3]}
  h1, c1 = sru_recurrence(**first, implementation="pallas", config=config)
  second = {**inputs, "u": inputs["u"][:, 3:], "x": inputs["x"][:, 3:], "c0": c1}
  h2, c2 = sru_recurrence(**second, implementation="pallas", config=config)
  np.testing.assert_allclose(jnp.concatenate([h1, h2], axis=1), whole[0], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(c2, whole[1], rtol=1e-6, atol=1e-6)


def test_bfloat16_inputs_keep_a_float32_state():
  inputs = make_inputs(2, 5, 2, 3, 8, seed=4, dtype=jnp.bfloat16)
  lengths = jnp.asarray([5, 4])
  # Forward only here (the compiled-kernel test covers bf16 gradients): interpret mode is slow.
  h, c_last = sru_recurrence(**inputs, seq_lengths=lengths, implementation="pallas",
                             config=SMALL)
  assert h.dtype == jnp.bfloat16 and c_last.dtype == jnp.float32
  h_ref, c_ref = oracle.sru(**inputs, lengths=np.asarray(lengths), scale_x=1.0, reverse=False)
  # Inputs are exact in both; only the bf16 rounding of h differs.
  np.testing.assert_allclose(np.asarray(h, np.float32), h_ref, rtol=1e-2, atol=1e-2)
  np.testing.assert_allclose(c_last, c_ref, rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise_clear_errors():
  inputs = make_inputs(2, 5, 1, 3, 8)
  with pytest.raises(ValueError, match="exactly when u has k = 3"):
    sru_recurrence(**{**inputs, "x": None}, implementation="sequential")
  with pytest.raises(ValueError, match="weight_c must have shape"):
    sru_recurrence(**{**inputs, "weight_c": inputs["weight_c"][:, :1]},
                   implementation="sequential")
  with pytest.raises(ValueError, match="batch, time, directions, k, hidden"):
    sru_recurrence(inputs["u"][:, :, 0], inputs["x"], inputs["weight_c"], inputs["bias"])
  with pytest.raises(ValueError, match="Unknown SRU implementation"):
    sru_recurrence(**inputs, implementation="cuda")
  with pytest.raises(ValueError, match="without the highway term"):
    sru_recurrence(**inputs, has_skip_term=False, implementation="sequential")


def test_default_implementation_follows_the_platform():
  assert resolve(None, "gpu").name == "pallas"
  assert resolve(None, "cpu").name == "sequential"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("directions,k,reverse,use_tanh,has_skip_term", [
    (1, 3, False, False, True), (2, 4, True, False, True), (2, 4, False, True, True),
    (1, 3, True, True, False)])
def test_compiled_kernel_matches_reference(directions, k, reverse, use_tanh, has_skip_term,
                                           dtype):
  batch, num_steps, hidden = 4, 300, 96
  form = dict(scale_x=1.3, reverse=reverse, use_tanh=use_tanh, has_skip_term=has_skip_term)
  inputs = make_inputs(batch, num_steps, directions, k, hidden, seed=7, dtype=dtype,
                       has_skip_term=has_skip_term)
  lengths = jnp.asarray([300, 1, 257, 128])
  fn = loss_and_grad("pallas", form, config=KernelConfig(), interpret=False)
  (_, (h, c_last)), grads = fn(inputs, lengths)
  (_, (h_ref, c_ref)), grads_ref = loss_and_grad("sequential", form)(inputs, lengths)
  tol = 1e-4 if dtype == jnp.float32 else 2e-2
  np.testing.assert_allclose(np.asarray(h, np.float32), np.asarray(h_ref, np.float32),
                             rtol=tol, atol=tol)
  np.testing.assert_allclose(c_last, c_ref, rtol=1e-4, atol=1e-4)
  for name in ARGS:
    if inputs[name] is not None:
      scale = float(jnp.max(jnp.abs(grads_ref[name].astype(jnp.float32))))
      np.testing.assert_allclose(
          np.asarray(grads[name], np.float32), np.asarray(grads_ref[name], np.float32),
          rtol=tol, atol=tol * scale, err_msg=name)


@pytest.mark.parametrize("k,use_tanh,has_skip_term", [(3, False, True), (4, True, True),
                                                      (3, True, False)])
def test_kernels_lower_for_gpu_on_any_machine(k, use_tanh, has_skip_term):
  # Pallas' Triton lowering runs when the program is lowered for CUDA, which needs no GPU: an op
  # in the kernels that Triton cannot express fails here (compiling to GPU code needs the device).
  inputs = make_inputs(2, 40, 2, k, 48, dtype=jnp.bfloat16, has_skip_term=has_skip_term)

  def fwd_bwd(inputs, lengths):
    def run(inputs):
      return sru_recurrence(**inputs, seq_lengths=lengths, use_tanh=use_tanh,
                            has_skip_term=has_skip_term, implementation="pallas",
                            interpret=False)
    out, vjp = jax.vjp(run, inputs)
    return vjp(out)

  text = cuda_lowering.lowered_text(fwd_bwd, inputs, jnp.array([40, 7]))
  assert text.count("xla.gpu.triton") == 2  # The forward and backward kernels.
