"""The dependency rules of docs/ARCHITECTURE.md, checked on the source (imports inside functions
included): pages → ui → fashion_core, no import cycle between modules, no module reaching for
another module's private (``_name``) helpers, and an engine that never imports Streamlit."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fashion_core", "ui", "views", "scripts", "tests")


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files():
    files = [ROOT / "app.py"]
    for package in PACKAGES:
        files += sorted((ROOT / package).glob("*.py"))
    return files


def imports(path):
    """``(module, names)`` for every import in ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = package[: len(package) - node.level + 1]
                base = ".".join(prefix + ([base] if base else []))
            yield base, tuple(alias.name for alias in node.names)


def local_graph():
    modules = {module_name(p): p for p in source_files()}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for module, names in imports(path):
            submodules = {f"{module}.{n}" for n in names} & set(modules)
            targets |= submodules or ({module} & set(modules))
        targets.discard(name)
        graph[name] = targets
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    assert find_cycle(local_graph()) is None


def test_no_module_imports_a_private_name_of_another():
    offenders = []
    local = {module_name(p) for p in source_files()}
    for path in source_files():
        for module, names in imports(path):
            if module.split(".")[0] not in ("fashion_core", "ui", "tests"):
                continue
            offenders += [f"{module_name(path)}: {module}.{n}" for n in names
                          if n.startswith("_") and not n.startswith("__") and f"{module}.{n}" not in local]
    assert offenders == []


def test_layers_point_down():
    graph = local_graph()
    for name, targets in graph.items():
        layer = name.split(".")[0]
        for target in targets:
            target_layer = target.split(".")[0]
            if layer == "fashion_core":
                assert target_layer == "fashion_core", f"{name} imports {target}"
            if layer == "ui":
                assert target_layer in ("fashion_core", "ui"), f"{name} imports {target}"
            if layer == "views":
                assert target_layer in ("fashion_core", "ui"), f"{name} imports {target}"


def test_engine_never_imports_streamlit():
    for path in (ROOT / "fashion_core").glob("*.py"):
        assert not any(m.split(".")[0] == "streamlit" for m, _ in imports(path)), path.name
