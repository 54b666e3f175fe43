"""The new-cell notebook runs end to end at a tiny size (its code cells, executed in order)."""

import json
import math
import pathlib
import tempfile

import matplotlib

from minrnn.layers import registry

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "new_cell.ipynb"


def test_new_cell_notebook_runs(monkeypatch, tmp_path):
  matplotlib.use("Agg")
  monkeypatch.setenv("MINRNN_NOTEBOOK_TINY", "1")
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # Where the notebook trains.
  monkeypatch.chdir(NOTEBOOK.parent)
  cells = json.loads(NOTEBOOK.read_text())["cells"]
  namespace = {"__name__": "__notebook__"}
  for cell in cells:
    if cell["cell_type"] == "code":
      exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}", "exec"), namespace)
  assert "floor_gated" in registry.names()
  results = namespace["results"]
  assert set(results) == {"mingru", "floor_gated"}
  for result in results.values():
    assert result["completed"] and result["step"] == namespace["NUM_STEPS"]
    assert math.isfinite(result["eval"]["loss"])
  assert namespace["fig"].axes[0].lines  # The comparison plot has curves.
