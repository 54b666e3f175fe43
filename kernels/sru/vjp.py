"""The fused Pallas SRU kernels as one differentiable function (`jax.custom_vjp`).

Reverse-mode autodiff cannot go through `pallas_call`, so the backward pass is its own kernel
(`pallas_triton.sru_backward`), fed the states the forward kernel saved.
"""

from __future__ import annotations

import functools

import jax

from minrnn.kernels.sru.pallas_triton import KernelConfig, sru_backward, sru_forward


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8, 9, 10))
def recurrence(u, x, params, c0, seq_lengths, scale_x, use_tanh, has_skip_term, reverse,
               interpret, config: KernelConfig):
  """SRU's recurrence in the Pallas kernels; arguments as `sru_forward` takes them (checked
  and prepared by `minrnn.ops.sru.sru_recurrence`). Returns `(h, c_last)`."""
  h, _, c_last = sru_forward(u, x, params, c0, seq_lengths, scale_x=scale_x,
                             use_tanh=use_tanh, has_skip_term=has_skip_term, reverse=reverse,
                             save_c=False, interpret=interpret, config=config)
  return h, c_last


def _forward(u, x, params, c0, seq_lengths, scale_x, use_tanh, has_skip_term, reverse,
             interpret, config):
  h, c_all, c_last = sru_forward(u, x, params, c0, seq_lengths, scale_x=scale_x,
                                 use_tanh=use_tanh, has_skip_term=has_skip_term,
                                 reverse=reverse, save_c=True, interpret=interpret,
                                 config=config)
  return (h, c_last), (u, x, params, c0, seq_lengths, c_all)


def _backward(scale_x, use_tanh, has_skip_term, reverse, interpret, config, residuals,
              cotangents):
  u, x, params, c0, seq_lengths, c_all = residuals
  dh, dc_last = cotangents
  du, dx, dparams, dc0 = sru_backward(
      u, x, params, c0, seq_lengths, c_all, dh, dc_last, scale_x=scale_x, use_tanh=use_tanh,
      has_skip_term=has_skip_term, reverse=reverse, interpret=interpret, config=config)
  return du, dx, dparams.astype(params.dtype), dc0, None


recurrence.defvjp(_forward, _backward)
