"""The package layering of pws/, read from the source with ``ast`` (nothing is imported).

* No module imports a private name (one starting with ``_``) from another pws module: what is shared
  between modules is public.
* The paper as data (``pws.paper``), the run record (``pws.records``), the engine (``pws.engine``) and the
  result tables (``pws.results``) form layers, ``pws.paper < pws.records < pws.engine < pws.results``: a
  package imports only from its own layer or the layers below it; the engine imports none of its apps.
  Imports inside functions count as well (a function-level import does not remove a cycle, it only hides
  it until the function runs).
* At most :data:`MAX_FUNCTION_IMPORTS` imports of pws modules inside functions, each with its reason on
  its line; the apps and the engine import nothing of ``pws.diagnostics`` or ``pws.results`` (a probe hook
  is named in the mmengine config's ``custom_imports``); no import cycle in all of pws, counting the
  ``custom_imports`` of ``configs/mmdet/*.py`` as imports of the module that loads those files.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PWS = Path(__file__).resolve().parents[1] / "pws"
LAYERS = ("pws.paper", "pws.records", "pws.engine", "pws.results")  # lowest first
APPS = ("pws.classify", "pws.detect", "pws.diagnostics")  # the engine's apps: above it, never below
MMDET_CONFIGS = PWS.parent / "configs" / "mmdet"
MAX_FUNCTION_IMPORTS = 8


def module_name(path: Path) -> str:
    parts = path.relative_to(PWS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PWS.rglob("*.py"))}


def imports(name: str, path: Path) -> Iterator[tuple[int, str, str | None]]:
    """``(line, module, imported name or None)`` of every import of ``path``, at any depth of the code.

    ``from a.b import c`` gives ``("a.b", "c")``; ``import a.b`` gives ``("a.b", None)``. Relative imports
    are resolved against ``name``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                yield node.lineno, target, alias.name


def is_pws(module: str) -> bool:
    return module == "pws" or module.startswith("pws.")


def is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def private_imports() -> list[str]:
    """``path:line: from <module> import <_name>`` for every private name taken from another pws module.

    A private *module* (``pws.data.detection._render``) is private to its package: the modules of that
    package may import it and its names; nothing outside the package may.
    """
    found = []
    names = modules()
    for name, path in names.items():
        for line, target, imported in imports(name, path):
            if not is_pws(target) or target == name:
                continue
            parts, attribute = target.split("."), imported
            if attribute is not None and f"{target}.{attribute}" in names:  # `from package import module`
                parts, attribute = [*parts, attribute], None
            bad = attribute is not None and is_private(attribute)
            for i, part in enumerate(parts):
                owner = ".".join(parts[:i])
                if is_private(part) and not (name == owner or name.startswith(owner + ".")):
                    bad = True
            if bad:
                shown = f"from {target} import {imported}" if imported is not None else f"import {target}"
                found.append(f"{path.relative_to(PWS.parent)}:{line}: {shown}")
    return found


def layer_of(module: str) -> str | None:
    for layer in LAYERS:
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def upward_imports() -> list[str]:
    """``path:line: <layer> imports <higher layer>`` for every import against the order of ``LAYERS``."""
    found = []
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    for name, path in modules().items():
        own = layer_of(name)
        if own is None:
            continue
        for line, target, imported in imports(name, path):
            targets = [target] if imported is None else [target, f"{target}.{imported}"]
            for t in targets:
                other = layer_of(t)
                if other is not None and rank[other] > rank[own]:
                    found.append(f"{path.relative_to(PWS.parent)}:{line}: {own} imports {t}")
                    break
    return found


def test_the_layers_exist():
    names = modules()
    for layer in LAYERS:
        assert layer in names, f"{layer} is not a package of pws/"


def test_no_private_name_is_imported_from_another_module():
    found = private_imports()
    assert not found, "private names imported across modules (make them public):\n" + "\n".join(found)


def test_paper_runs_results_are_layers_without_cycles():
    found = upward_imports()
    assert not found, f"imports against the order {' < '.join(LAYERS)}:\n" + "\n".join(found)


def test_the_paper_layer_imports_nothing_else_of_pws():
    """The published numbers and table definitions are data: they stand on nothing else of the project."""
    found = [
        f"{path.relative_to(PWS.parent)}:{line}: {target}"
        for name, path in modules().items()
        if layer_of(name) == "pws.paper"
        for line, target, _ in imports(name, path)
        if is_pws(target) and layer_of(target) != "pws.paper"
    ]
    assert not found, "pws.paper imports other pws packages:\n" + "\n".join(found)


def module_cycle(prefixes: tuple[str, ...], extra: dict[str, set[str]] | None = None) -> list[str]:
    """One cycle of imports between the modules under ``prefixes`` (any depth of the code; ``extra``: more
    edges, module -> modules it imports at run time), or []."""
    names = modules()
    inside = {n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)}
    graph: dict[str, set[str]] = {}
    for name in inside:
        edges = {t for t in (extra or {}).get(name, set()) if t in inside}
        for _, target, imported in imports(name, names[name]):
            for t in ([target] if imported is None else [f"{target}.{imported}", target]):
                if t in inside and t != name:
                    edges.add(t)
                    break
        graph[name] = edges
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_import_cycle_between_the_modules_of_the_layers():
    """Within the layers too, modules import each other one way (a package importing its own submodules
    in ``__init__`` is not a cycle unless a submodule imports the package back)."""
    cycle = module_cycle(LAYERS)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_layers_of_pws_nn_import_no_mmcv():
    """The method table names mmcv/mmdet layers as strings; pws.nn itself needs only torch."""
    found = [
        f"{path.relative_to(PWS.parent)}:{line}: {target}"
        for name, path in modules().items()
        if name == "pws.nn" or name.startswith("pws.nn.")
        for line, target, _ in imports(name, path)
        if target.split(".")[0] in ("mmcv", "mmdet", "mmengine")
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "source, expected",
    [
        (
            "from pws.results.collect import _override_dict\n",
            ["from pws.results.collect import _override_dict"],
        ),
        ("def f():\n    from pws.records import _secret\n", ["from pws.records import _secret"]),
        ("from pws.nn import fold\nfrom torch import _C\n", []),
        ("from . import _tiny\n", ["from pws.results import _tiny"]),
        ("from pws.results._helpers import tidy\nfrom . import _helpers\n", []),  # the package's own
        ("from pws.records._hidden import tidy\n", ["from pws.records._hidden import tidy"]),
        ("import pws.records._hidden\n", ["import pws.records._hidden"]),
    ],
)
def test_the_private_import_check_sees_what_it_should(tmp_path, monkeypatch, source, expected):
    root = tmp_path / "pws"
    (root / "results").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "results" / "__init__.py").write_text("")
    (root / "results" / "probe.py").write_text(source)
    (root / "results" / "_helpers.py").write_text("def tidy():\n    pass\n")
    (root / "records").mkdir()
    (root / "records" / "__init__.py").write_text("")
    (root / "records" / "_hidden.py").write_text("def tidy():\n    pass\n")
    monkeypatch.setitem(globals(), "PWS", root)
    assert [f.split(": ", 1)[1] for f in private_imports()] == expected


def test_the_layer_check_counts_imports_inside_functions(tmp_path, monkeypatch):
    root = tmp_path / "pws"
    for package in ("records", "results", "paper"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "records" / "tracking.py").write_text("def f():\n    from pws.results.report import build\n")
    (root / "paper" / "published.py").write_text("from pws import records\n")
    (root / "results" / "report.py").write_text(
        "from pws.paper import published\nfrom pws.records import record\n"
    )
    monkeypatch.setitem(globals(), "PWS", root)
    found = sorted(f.split(": ", 1)[1] for f in upward_imports())
    assert found == ["pws.paper imports pws.records", "pws.records imports pws.results.report"]


def test_the_cycle_check_sees_a_cycle_hidden_in_a_function(tmp_path, monkeypatch):
    root = tmp_path / "pws"
    (root / "results").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "results" / "__init__.py").write_text("")
    (root / "results" / "report.py").write_text("from pws.results.collect import Run\n")
    (root / "results" / "collect.py").write_text("def f():\n    from pws.results import report\n")
    monkeypatch.setitem(globals(), "PWS", root)
    assert module_cycle(("pws.results",)) in (
        ["pws.results.collect", "pws.results.report", "pws.results.collect"],
        ["pws.results.report", "pws.results.collect", "pws.results.report"],
    )


def test_the_engine_imports_none_of_its_apps():
    found = [
        f"{path.relative_to(PWS.parent)}:{line}: {target}"
        for name, path in modules().items()
        if name.startswith("pws.engine")
        for line, target, _ in imports(name, path)
        if any(target == app or target.startswith(app + ".") for app in APPS)
    ]
    assert not found, "the engine imports an app:\n" + "\n".join(found)


def function_imports() -> list[tuple[str, str]]:
    """``(path:line, source line)`` of every import of a pws module inside a function of pws/."""
    found = []
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    targets = [node.module or ""] if not node.level else [name]
                else:
                    continue
                if any(is_pws(t) for t in targets):
                    found.append((f"{path.relative_to(PWS.parent)}:{node.lineno}", lines[node.lineno - 1]))
    return found


def has_reason(line: str) -> bool:
    """A comment on the line that says something beyond a ``noqa`` code."""
    _, _, comment = line.partition("#")
    return bool(re.search(r"[a-z]{3,}", re.sub(r"noqa(: *[A-Z0-9, ]+)?", "", comment)))


def test_few_imports_inside_functions_each_with_its_reason():
    found = function_imports()
    shown = "\n".join(f"{where}: {line.strip()}" for where, line in found)
    assert len(found) <= MAX_FUNCTION_IMPORTS, f"{len(found)} imports of pws inside functions:\n{shown}"
    silent = [f"{where}: {line.strip()}" for where, line in found if not has_reason(line)]
    assert not silent, "imports inside functions without their reason on the line:\n" + "\n".join(silent)


def test_the_apps_and_the_engine_import_neither_diagnostics_nor_results():
    below = ("pws.classify", "pws.detect", "pws.engine")
    above = ("pws.diagnostics", "pws.results")
    found = [
        f"{path.relative_to(PWS.parent)}:{line}: {target}"
        for name, path in modules().items()
        if any(name == b or name.startswith(b + ".") for b in below)
        for line, target, _ in imports(name, path)
        if any(target == a or target.startswith(a + ".") for a in above)
    ]
    assert not found, "\n".join(found)


def config_imports() -> dict[str, set[str]]:
    """module -> the modules named by the ``custom_imports`` of the mmdet config files it loads (the module
    that names ``configs/mmdet`` loads them all)."""
    quoted_module = r"[\"'](pws(?:\.\w+)+)[\"']"
    named = {m for f in MMDET_CONFIGS.glob("*.py") for m in re.findall(quoted_module, f.read_text())}
    names_the_folder = r"[\"']configs[\"'] / [\"']mmdet[\"']"
    loaders = {n for n, p in modules().items() if re.search(names_the_folder, p.read_text())}
    return {loader: named for loader in loaders}


def test_no_import_cycle_in_pws_at_run_time():
    extra = config_imports()
    assert extra and all(extra.values()), "no module loads configs/mmdet or its files name no pws module"
    cycle = module_cycle(("pws",), extra)
    assert not cycle, "import cycle: " + " -> ".join(cycle)
