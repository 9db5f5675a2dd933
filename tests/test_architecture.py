"""The package's shape, checked on its source: no import cycle, no module reaching into another's
private names, no cinv import hidden in a function body, every ``cinv.*`` MLflow key defined in
``tracking/schema.py``, every user-facing error class in ``errors.py``."""

import ast
from importlib.util import find_spec
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "cinv"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported(name: str) -> list[tuple[str, list[str], ast.AST, bool]]:
    """(module imported, names taken from it, node, inside a function body) for each cinv import."""
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((alias.name, [], child, in_function) for alias in child.names if alias.name.split(".")[0] == "cinv")
            elif isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "cinv":
                out.append((child.module, [alias.name for alias in child.names], child, in_function))
            visit(child, inside)

    visit(TREES[name], False)
    return out


def edges(name: str) -> set[str]:
    """Modules that importing ``name`` runs: what it imports, their parent packages (unless the
    importer is inside them, already initialising), and submodules taken with ``from pkg import sub``."""
    out = set()
    for module, names, _, _ in imported(name):
        submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
        # A module taking submodules from its own package (already initialising) does not depend on
        # the package's __init__; taking anything else from it does.
        own = module in ancestors(name) and len(submodules) == len(names)
        targets = ([] if own else [module]) + submodules
        for target in targets:
            out.add(target)
            out |= {a for a in ancestors(target) if a not in ancestors(name) and a != name and a in MODULES}
    return out - {name}


def test_the_package_has_no_import_cycle():
    graph = {name: edges(name) & set(MODULES) for name in MODULES}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_uses_another_modules_private_names():
    problems = []
    for name, tree in TREES.items():
        aliases = {}
        for module, _, node, _ in imported(name):
            for alias in node.names:
                if isinstance(node, ast.ImportFrom):
                    target = f"{module}.{alias.name}"
                    if alias.name.startswith("_") and target not in MODULES:
                        problems.append(f"{name}:{node.lineno} imports {module}.{alias.name}")
                    if target in MODULES:
                        aliases[alias.asname or alias.name] = target
                else:
                    aliases[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in aliases):
                problems.append(f"{name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not problems, problems


def test_no_cinv_import_hides_in_a_function_body():
    hidden = [f"{name}:{node.lineno} imports {module}" for name in MODULES for module, _, node, inside in imported(name) if inside]
    assert not hidden, hidden


def names_a_module(text: str) -> bool:
    try:
        return "{" not in text and not text.endswith(".") and find_spec(text) is not None
    except ImportError:
        return False


def test_every_cinv_tag_key_is_defined_in_the_schema():
    """Strings ``cinv.<something>`` outside tracking/schema.py may only name modules (importlib,
    entry points, package resources), never an MLflow tag, param or attribute key."""
    found = []
    for name, tree in TREES.items():
        if name == "cinv.tracking.schema":
            continue
        for node in ast.walk(tree):
            text = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                text = str(node.values[0].value) + "{...}"
            if text and text.startswith("cinv.") and " " not in text and "\n" not in text:
                if text == "cinv.plugins" or text in MODULES or names_a_module(text):
                    continue
                found.append(f"{name}:{node.lineno} {text!r}")
    assert not found, found


def test_every_user_facing_error_class_lives_in_errors():
    from cinv import errors

    stray = []
    for name, tree in TREES.items():
        if name == "cinv.errors":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                if any(b.endswith(("Error", "Exception", "Failed")) for b in bases):
                    stray.append(f"{name}: class {node.name}({', '.join(bases)})")
    assert not stray, stray
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.DatasetError, errors.CinvError)


# The declared order of layers, from the bottom: each package (or top-level module) imports only
# the ones before it. The run context sits low (every layer takes one); tracking is plain MLflow
# logging below training; evaluation (protocols, reports) sits above the methods it measures.
LAYERS = ["secrets", "errors", "registry", "runtime", "distributed", "plugins", "corruption", "data", "encoders", "losses",
          "context", "config", "tracking", "training", "methods", "evaluation", "probe", "promotion", "settings", "experiments", "tuning",
          "commands", "cli"]


def layer_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_every_package_imports_only_the_layers_below_it():
    present = {layer_of(name) for name in MODULES if name != "cinv"}
    assert present <= set(LAYERS), f"place {sorted(present - set(LAYERS))} in LAYERS"
    upward = []
    for name in MODULES:
        if name == "cinv":
            continue
        here = layer_of(name)
        for module, names, node, _ in imported(name):
            targets = [module] if module != "cinv" else [f"cinv.{n}" for n in names]
            for target in targets:
                there = layer_of(target)
                if there != here and LAYERS.index(there) > LAYERS.index(here):
                    upward.append(f"{name}:{node.lineno} imports {target} ({here} is below {there})")
    assert not upward, upward


def test_context_managers_are_entered_with_with():
    """A lease (or any context) entered by hand needs an exit on every way out; ``with`` has one."""
    by_hand = [f"{name}:{node.lineno}" for name, tree in TREES.items() for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr in ("__enter__", "__exit__")
               and isinstance(node.ctx, ast.Load) and not (isinstance(node.value, ast.Name) and node.value.id == "self")]
    assert not by_hand, by_hand


def test_the_cli_parses_and_runs_and_leaves_resume_and_mlproject_to_their_owners():
    defined = {node.name for node in TREES["cinv.cli"].body if isinstance(node, ast.FunctionDef)}
    assert not defined & {"resume_run", "latest_resumable", "check_same_config", "experiment_of_new_runs", "_yaml_scalar"}
    assert {"resume_run", "latest_resumable"} <= {n.name for n in TREES["cinv.tracking.resume"].body if isinstance(n, ast.FunctionDef)}


@pytest.mark.parametrize("stage", ["corruption", "data", "encoders", "losses", "methods", "training", "evaluation", "tracking",
                                   "config", "commands", "experiments"])
def test_the_layout_reads_as_the_pipeline(stage):
    assert is_package(f"cinv.{stage}"), f"cinv/{stage}/ is one folder per stage"


def test_a_setting_changed_after_validation_is_validated_again():
    """``model_copy(update=...)`` skips pydantic's checks: a resolved config changes through
    ``config.base.updated``, which validates the result again."""
    copies = [f"{name}:{node.lineno}" for name, tree in TREES.items() for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "model_copy"
              and any(k.arg == "update" for k in node.keywords)]
    assert not copies, copies


def test_the_package_docstring_names_the_layers_in_their_order():
    import re

    import cinv

    named = [n for n in re.findall(r"``(\w+)``", cinv.__doc__) if n in LAYERS and n != "plugins"]
    assert len(named) >= 15 and named == sorted(named, key=LAYERS.index), named
