"""The new-cell notebook runs end to end in a Jupyter kernel at a tiny size, and shows its
comparison figure (importing minrnn must not switch matplotlib away from the inline backend)."""

import json
import os
import pathlib
import sys

import pytest

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "new_cell.ipynb"


def test_new_cell_notebook_runs_and_shows_its_figure(monkeypatch, tmp_path):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  monkeypatch.setenv("MINRNN_NOTEBOOK_TINY", "1")
  # The kernel runs `python`: this interpreter, whether or not its environment is activated.
  monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
  monkeypatch.setenv("TMPDIR", str(tmp_path))  # Where the notebook trains.
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  text = "".join(o.get("text", "") for o in outputs)
  assert "passed: test_step_mode_equals_parallel_mode" in text
  assert "floor_gated {" in text and "mingru {" in text  # Both trained and evaluated.
  assert any("image/png" in o.get("data", {}) for o in outputs)


def test_the_committed_notebook_holds_its_outputs():
  cells = json.loads(NOTEBOOK.read_text())["cells"]
  outputs = [o for cell in cells if cell["cell_type"] == "code" for o in cell["outputs"]]
  assert any("image/png" in o.get("data", {}) for o in outputs)
  assert not os.environ.get("MINRNN_NOTEBOOK_TINY")
