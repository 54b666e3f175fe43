"""Records the official `sru` package's SRU on a small grid of options into
`tests/fixtures/sru_official.npz`, which `tests/test_sru_official.py` checks minrnn's `SRU` against.

Not run in CI, and not a minrnn dependency: it needs PyTorch and the official package. Run it
from the repository root in a throwaway virtual environment outside the repository (the CPU
build of PyTorch is enough; the default `pip install torch` pulls a multi-GB CUDA build):

    VENV="$(mktemp -d)/venv" && python3 -m venv "$VENV"
    "$VENV/bin/pip" install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    "$VENV/bin/pip" install sru==2.6.0 numpy
    "$VENV/bin/python" scripts/sru_reference_fixture.py

Importing `sru` compiles a small C++ extension (a C++ compiler is needed) and warns that its CUDA
kernels could not be built; that is expected. On CPU with gradients enabled the package runs its
pure-PyTorch recurrence (`sru.ops.elementwise_recurrence_naive`), which is what is recorded. The
script also checks that path against the package's compiled CPU inference kernel.

Every case builds `sru.SRU(input_size, hidden_size, num_layers, **options)` with the official
initialisation under a fixed seed, then perturbs the biases and layer-norm parameters (so that a
swapped or misplaced one shows), and runs in eval mode (dropout off) in float64 from float32
values: the recorded numbers are the exact-arithmetic answer up to float32 rounding, so a
comparison measures minrnn's float32 error alone. The loss differentiated is
`sum(h * ph) + sum(c * pc)` with fixed random `ph`, `pc`.

Contents, per case `<name>` (official, time-major layouts; all float32 but `lengths`):
  `<name>/x` (T, B, in), `<name>/c0` (L, B, out), `<name>/lengths` int32 (B,) (only for cases
  with padding; `mask_pad` is `t >= lengths[b]`), `<name>/ph` (T, B, out), `<name>/pc` (L, B, out),
  `<name>/h` (T, B, out), `<name>/c` (L, B, out), `<name>/param/<official name>` (e.g.
  `rnn_lst.0.weight`), `<name>/grad/<official name>`, `<name>/grad/x`, `<name>/grad/c0`;
and `meta`, a JSON string: the torch and sru versions and, per case, the sizes, the `sru.SRU`
options, and per layer `num_matrices`, `projection_size` and the highway scale in effect.
(out = directions * hidden_size.)
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import sru
import torch

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "sru_official.npz"
SEED = 0

# (name, input_size, hidden_size, num_layers, batch, time, padded, nonzero c0, sru.SRU options).
# With two layers the first has the input's width and the second the output's, so a case whose
# widths differ runs both the 4-matrix projection (highway input `u3`) and the 3-matrix one.
CASES = [
    ("plain", 5, 5, 2, 2, 5, False, False, {}),
    ("widen", 3, 6, 1, 2, 4, False, True, {}),
    ("highway_rescale", 4, 6, 2, 3, 5, True, True, dict(highway_bias=-1.5, rescale=True)),
    ("highway_no_rescale", 6, 4, 2, 2, 5, False, True, dict(highway_bias=-2.0, rescale=False)),
    ("bidirectional", 4, 3, 2, 3, 5, True, True,
     dict(bidirectional=True, highway_bias=-1.0, rescale=True)),
    ("layer_norm_pre", 5, 4, 2, 3, 5, True, True, dict(layer_norm=True)),
    ("layer_norm_post", 4, 3, 2, 3, 5, True, True,
     dict(layer_norm=True, normalize_after=True, highway_bias=-1.0, rescale=True)),
    ("layer_norm_post_bidirectional", 6, 3, 2, 3, 4, True, False,
     dict(layer_norm=True, normalize_after=True, bidirectional=True)),
    ("projection", 7, 6, 2, 2, 5, False, True, dict(projection_size=3)),
    # 5 does not narrow the 4-wide first layer (no factoring there), but narrows the second.
    ("projection_second_layer_only", 4, 6, 2, 2, 4, False, False, dict(projection_size=5)),
    ("tanh", 5, 5, 2, 3, 5, True, True, dict(use_tanh=True)),
    ("no_skip_term", 3, 5, 2, 3, 5, True, True,
     dict(has_skip_term=False, highway_bias=-1.0, rescale=True)),
    ("all_options", 7, 4, 2, 3, 6, True, True,
     dict(bidirectional=True, layer_norm=True, normalize_after=True, use_tanh=True,
          projection_size=4, highway_bias=-1.0, rescale=True)),
]


def build(input_size, hidden_size, num_layers, options, generator):
  """The official stack with its own initialisation, biases and layer norms perturbed."""
  model = sru.SRU(input_size, hidden_size, num_layers, **options)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = 0.2 * torch.randn(p.shape, generator=generator)
      if name.endswith(".bias") or name.endswith("layer_norm.weight"):
        p.add_(noise)  # Highway bias, forget bias, layer-norm gain and shift: all distinct.
  return model.eval()  # Dropout off (and no dropout is configured anyway).


def layer_facts(model):
  """What minrnn must reproduce per layer: matrices, factoring, and the highway scale in use."""
  return [{"num_matrices": cell.num_matrices, "projection_size": cell.projection_size,
           # The cell multiplies x by scale_x only with rescale (k = 3); otherwise by 1.
           "scale_x": float(cell.scale_x[0]) if cell.rescale else 1.0}
          for cell in model.rnn_lst]


def run(model, x, c0, mask_pad, ph, pc, dtype):
  """Forward and backward of `sum(h * ph) + sum(c * pc)` in `dtype`: outputs and gradients."""
  model = model.to(dtype)
  model.zero_grad()
  x = x.to(dtype).requires_grad_(True)
  c0 = c0.to(dtype).requires_grad_(True)
  h, c = model(x, c0, mask_pad=mask_pad)
  (h * ph.to(dtype)).sum().add((c * pc.to(dtype)).sum()).backward()
  grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
  grads["x"], grads["c0"] = x.grad, c0.grad
  return h.detach(), c.detach(), grads


def max_diff(a, b):
  return float((a.double() - b.double()).abs().max())


def record(case, generator):
  """One case's arrays (keys without the case prefix), its meta entry, and check diffs."""
  name, input_size, hidden_size, num_layers, batch, steps, padded, nonzero_c0, options = case
  model = build(input_size, hidden_size, num_layers, options, generator)
  out = model.output_size
  x = torch.randn(steps, batch, input_size, generator=generator)
  c0 = (0.5 * torch.randn(num_layers, batch, out, generator=generator) if nonzero_c0
        else torch.zeros(num_layers, batch, out))
  lengths = torch.tensor([steps, steps - 2, 1][:batch], dtype=torch.int32) if padded else None
  mask_pad = (torch.arange(steps)[:, None] >= lengths[None, :]) if padded else None
  ph = torch.randn(steps, batch, out, generator=generator)
  pc = torch.randn(num_layers, batch, out, generator=generator)
  params = {k: v.detach().clone() for k, v in model.named_parameters()}
  h, c, grads = run(model, x, c0, mask_pad, ph, pc, torch.float64)
  h32, c32, grads32 = run(model, x, c0, mask_pad, ph, pc, torch.float32)
  with torch.no_grad():  # The compiled CPU kernel (inference only) against the pure path.
    h_cpu, c_cpu = model(x, c0, mask_pad=mask_pad)
  # The official package's own float32 error, and its two CPU paths' agreement.
  checks = {"f32-f64 h": max_diff(h32, h), "f32-f64 c": max_diff(c32, c),
            "f32-f64 grads": max(max_diff(grads32[k], grads[k]) for k in grads),
            "kernel-pure h": max_diff(h_cpu, h32), "kernel-pure c": max_diff(c_cpu, c32)}
  assert max(checks["kernel-pure h"], checks["kernel-pure c"]) < 1e-5, checks
  arrays = {"x": x, "c0": c0, "ph": ph, "pc": pc, "h": h, "c": c,
            **{f"param/{k}": v for k, v in params.items()},
            **{f"grad/{k}": v for k, v in grads.items()}}
  arrays = {k: v.detach().numpy().astype(np.float32) for k, v in arrays.items()}
  if padded:
    arrays["lengths"] = lengths.numpy()
  meta = {"input_size": input_size, "hidden_size": hidden_size, "num_layers": num_layers,
          "options": options, "layers": layer_facts(model)}
  return arrays, meta, checks


def main():
  torch.manual_seed(SEED)  # The official initialisation draws from the global generator.
  generator = torch.Generator().manual_seed(SEED)
  arrays, cases = {}, {}
  for case in CASES:
    case_arrays, cases[case[0]], checks = record(case, generator)
    arrays.update({f"{case[0]}/{k}": v for k, v in case_arrays.items()})
    print(f"{case[0]:32s}", "  ".join(f"{k} {v:.1e}" for k, v in checks.items()))
  meta = {"torch": torch.__version__, "sru": sru.__version__, "seed": SEED,
          "computed_in": "float64 from float32 values, stored as float32", "cases": cases}
  OUT.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(OUT, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
  print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.1f} KiB, {len(arrays)} arrays)")


if __name__ == "__main__":
  main()
