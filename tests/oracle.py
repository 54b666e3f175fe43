"""Float64 NumPy loops that follow the papers' equations one step at a time: the tests' oracle."""

import numpy as np


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def g(x):
  return np.where(x >= 0, x + 0.5, sigmoid(x))


def linear_scan(a, b, h0=None, reverse=False):
  """h_t = a_t h_{t-1} + b_t over axis 1; returns (h, h_last) in float64."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  h = np.zeros(a.shape[:1] + a.shape[2:]) if h0 is None else np.asarray(h0, np.float64)
  out = np.zeros_like(a)
  steps = range(a.shape[1] - 1, -1, -1) if reverse else range(a.shape[1])
  for t in steps:
    h = a[:, t] * h + b[:, t]
    out[:, t] = h
  return out, h


def linear_scan_vjp(a, b, h0, dh, dh_last, reverse=False):
  """Adjoint of `linear_scan` (forward direction only): returns (da, db, dh0)."""
  if reverse:
    da, db, dh0 = linear_scan_vjp(a[:, ::-1], b[:, ::-1], h0, dh[:, ::-1], dh_last)
    return da[:, ::-1], db[:, ::-1], dh0
  a = np.asarray(a, np.float64)
  h, _ = linear_scan(a, b, h0)
  h_prev = np.concatenate([np.asarray(h0, np.float64)[:, None], h[:, :-1]], axis=1)
  grad = np.asarray(dh_last, np.float64).copy()
  da, db = np.zeros_like(a), np.zeros_like(a)
  for t in range(a.shape[1] - 1, -1, -1):
    grad = grad + dh[:, t]
    db[:, t] = grad
    da[:, t] = grad * h_prev[:, t]
    grad = grad * a[:, t]
  return da, db, grad


def mingru(x, kernel, bias, h0):
  """minGRU: z = σ(W_z x), h̃ = W_h x, h = (1 − z) h + z g(h̃); kernel (in, 2H) = [W_z | W_h]."""
  x, kernel, bias = (np.asarray(v, np.float64) for v in (x, kernel, bias))
  hidden = kernel.shape[1] // 2
  h = np.asarray(h0, np.float64).copy()
  out = np.zeros(x.shape[:2] + (hidden,))
  for t in range(x.shape[1]):
    pre = x[:, t] @ kernel + bias
    z, h_tilde = sigmoid(pre[:, :hidden]), pre[:, hidden:]
    h = (1 - z) * h + z * g(h_tilde)
    out[:, t] = h
  return out, h


def minlstm(x, kernel, bias, h0, normalize=True):
  """minLSTM: f, i = σ(W_f x), σ(W_i x), optionally / (f + i); h = f h + i g(h̃)."""
  x, kernel, bias = (np.asarray(v, np.float64) for v in (x, kernel, bias))
  hidden = kernel.shape[1] // 3
  h = np.asarray(h0, np.float64).copy()
  out = np.zeros(x.shape[:2] + (hidden,))
  for t in range(x.shape[1]):
    pre = x[:, t] @ kernel + bias
    f, i = sigmoid(pre[:, :hidden]), sigmoid(pre[:, hidden:2 * hidden])
    if normalize:
      f, i = f / (f + i), i / (f + i)
    h = f * h + i * g(pre[:, 2 * hidden:])
    out[:, t] = h
  return out, h


def sru(u, x, weight_c, bias, c0, lengths, scale_x, reverse, use_tanh=False,
        has_skip_term=True):
  """SRU's recurrence after the projection (`minrnn.ops.sru.sru_recurrence`'s arguments); returns
  (h, c_last). Steps past `lengths[b]` are skipped (c kept, h zero); direction 1 runs backward
  in time, and `reverse` flips both."""
  u, weight_c, bias, c0 = (np.asarray(a, np.float64) for a in (u, weight_c, bias, c0))
  batch, num_steps, directions, k, hidden = u.shape
  x_prime = None
  if has_skip_term:
    x_prime = u[:, :, :, 3] if k == 4 else scale_x * np.asarray(x, np.float64)
  h = np.zeros((batch, num_steps, directions, hidden))
  c_last = np.zeros((batch, directions, hidden))
  for b in range(batch):
    for d in range(directions):
      c = c0[b, d].copy()
      steps = range(int(lengths[b]))
      if (d == 1) != reverse:
        steps = reversed(steps)
      for t in steps:
        f = sigmoid(u[b, t, d, 1] + weight_c[d, 0] * c + bias[d, 0])
        r = sigmoid(u[b, t, d, 2] + weight_c[d, 1] * c + bias[d, 1])
        c = f * c + (1 - f) * u[b, t, d, 0]
        g_c = np.tanh(c) if use_tanh else c
        h[b, t, d] = r * g_c if x_prime is None else r * g_c + (1 - r) * x_prime[b, t, d]
      c_last[b, d] = c
  return h, c_last
