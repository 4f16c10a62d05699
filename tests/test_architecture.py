"""The layering the code promises: stages know no orchestrator, no import cycles, a Config without TensorFlow."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    return {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
            for package in ("flows", "tasks") for path in (ROOT / package).rglob("*.py")}


def _imported_names(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (top level, inside functions, TYPE_CHECKING)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the kit's modules it imports. A submodule importing its own package is not an edge: Python
    runs the package's __init__ first anyway."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for target in _imported_names(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_flows_and_tasks():
    graph = import_graph()
    assert "tasks.stages" in graph and "tasks.backends.kaggle" in graph["tasks.backends"]
    assert cycles(graph) == []


def test_stages_know_no_orchestrator_or_cli():
    offenders = {name: sorted(imported) for name, path in _modules().items() if name.startswith("tasks")
                 if (imported := {module for module in _imported_names(path)
                                  if module.split(".")[0] in ("prefect", "typer", "flows")})}
    assert offenders == {}


def test_a_config_and_the_backends_load_without_tensorflow():
    """`headstart submit` and friends build a Config and open a backend: no TensorFlow for that."""
    code = ("import sys; from tasks.config import Config; from tasks.backends import open_backend, submit_file; "
            "import flows.cli; Config(members=('cnn',)); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'prefect') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
