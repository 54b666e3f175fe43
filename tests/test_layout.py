"""The package's layers, read from its imports: kernels <- ops <- cells and layers <- models <-
tasks <- training <- the command-line modules; data readers import nothing above them; no import
cycles; every package folder is in the wheel's package list."""

import ast
import pathlib
import tomllib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# Each subpackage and what it may import from minrnn (besides itself).
ALLOWED = {
    "kernels": set(),
    "data": set(),
    "ops": {"kernels"},
    "cells": {"kernels", "ops"},
    "layers": {"kernels", "ops", "cells"},
    "models": {"kernels", "ops", "cells", "layers"},
    "tasks": {"kernels", "ops", "cells", "layers", "models", "data"},
    "training": {"kernels", "ops", "cells", "layers", "models", "data", "tasks"},
    # The command-line modules minrnn/train.py and minrnn/sample.py.
    "cli": {"kernels", "ops", "cells", "layers", "models", "data", "tasks", "training"},
}


def _modules():
  """module name -> path of every module of the package (kernels as minrnn.kernels)."""
  modules = {}
  for root, prefix in ((REPO / "minrnn", "minrnn"), (REPO / "kernels", "minrnn.kernels")):
    for path in root.rglob("*.py"):
      parts = path.relative_to(root).with_suffix("").parts
      if parts[-1] == "__init__":
        parts = parts[:-1]
      modules[".".join((prefix, *parts))] = path
  return modules


def _imports(path: pathlib.Path, name: str) -> set[str]:
  """The minrnn modules `path` imports (at any depth of the file)."""
  package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base])
      found |= {base} | {f"{base}.{a.name}" for a in node.names}
  return {m for m in found if m == "minrnn" or m.startswith("minrnn.")}


def _layer(module: str) -> str:
  parts = module.split(".")
  if len(parts) == 1:
    return "root"
  return parts[1] if parts[1] in ALLOWED else "cli"


GRAPH = {name: _imports(path, name) for name, path in _modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down_the_layers(module):
  layer = _layer(module)
  if layer == "root":
    return
  for imported in GRAPH[module]:
    target = _layer(imported)
    if target in ("root", layer) or imported not in GRAPH:
      continue
    assert target in ALLOWED[layer], f"{module} ({layer}) imports {imported} ({target})"


def test_no_import_cycles():
  known = set(GRAPH)
  edges = {m: {i for i in imports if i in known and i != m} for m, imports in GRAPH.items()}
  visiting, done = set(), set()

  def visit(module, path):
    if module in visiting:
      raise AssertionError("import cycle: " + " -> ".join(path + [module]))
    if module in done:
      return
    visiting.add(module)
    for nxt in sorted(edges[module]):
      # A package's __init__ importing its own submodules is not a cycle through them.
      if not module.startswith(nxt + ".") and not nxt.startswith(module + ".") or \
          module == "minrnn":
        visit(nxt, path + [module])
    visiting.discard(module)
    done.add(module)

  for module in sorted(edges):
    visit(module, [])


def test_every_package_folder_is_in_the_wheel():
  listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
               ["packages"])
  folders = {name for name, path in _modules().items() if path.name == "__init__.py"}
  assert folders == listed
