"""The package's seams, checked on its source: private names of other libraries only in
``optuna_dl._compat``, trial-record keys only in ``optuna_dl.records``, no import cycle,
and each layer importing only from the layers below it."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import optuna
import pytest
import sklearn

from optuna_dl import _compat
from optuna_dl.records import TrialRecord

PACKAGE = Path(__file__).resolve().parents[1] / "optuna_dl"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _code_without_docstrings(path: Path) -> ast.Module:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0] = ast.Pass()
    return tree


def test_the_compat_module_was_checked_against_the_installed_versions():
    """A new Optuna or scikit-learn release is a reason to read ``_compat`` again."""
    installed_optuna = ".".join(optuna.__version__.split(".")[:2])
    installed_sklearn = ".".join(sklearn.__version__.split(".")[:2])
    assert (installed_optuna, installed_sklearn) == (
        _compat.CHECKED_OPTUNA,
        _compat.CHECKED_SKLEARN,
    ), (
        f"optuna {optuna.__version__} / scikit-learn {sklearn.__version__} installed; "
        "optuna_dl/_compat.py was checked against "
        f"{_compat.CHECKED_OPTUNA} / {_compat.CHECKED_SKLEARN}: check each name there, "
        "then update CHECKED_OPTUNA / CHECKED_SKLEARN."
    )


#: Private names of other libraries: ``obj._name`` on a study, storage, pruner, ...,
#: imports from private modules (``optuna.storages._rdb``), private logger names.
_PRIVATE_ATTRIBUTE = re.compile(
    r"\b(study|storage|trial|pruner|sampler|forkserver|backend|engine)\._[a-z]\w*"
)
_PRIVATE_MODULE = re.compile(r"\b(optuna|sklearn|multiprocessing)(\.\w+)*\._[a-z]\w*")
_PRIVATE_STRING = re.compile(r"[\"']_(skl_|n_warmup|interval_steps|min_resource|reduction)")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_private_names_of_other_libraries_appear_only_in_compat(path):
    if path.name == "_compat.py":
        return
    code = ast.unparse(_code_without_docstrings(path))
    found = [
        match.group(0)
        for pattern in (_PRIVATE_ATTRIBUTE, _PRIVATE_MODULE, _PRIVATE_STRING)
        for match in pattern.finditer(code)
    ]
    assert not found, f"{path.name} uses private names {found}; move them to _compat.py"


def test_the_private_name_check_can_fail():
    for line in (
        "storage = study._storage",
        "from optuna.storages._rdb import models",
        "getattr(pruner, '_n_warmup_steps', None)",
        "getattr(self, '_skl_callbacks', [])",
    ):
        assert any(
            p.search(line) for p in (_PRIVATE_ATTRIBUTE, _PRIVATE_MODULE, _PRIVATE_STRING)
        ), line


RECORD_KEYS = {field.name for field in dataclasses.fields(TrialRecord)}


def _string_constants(tree: ast.AST) -> set[str]:
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_trial_record_keys_are_spelled_only_in_records(path):
    """Outside ``records.py`` a trial's user attributes are read and written through
    :class:`TrialRecord`, never by their key (``TrialRecord(best_epoch=...)``, a keyword,
    is not a string)."""
    if path.name == "records.py":
        return
    tree = _code_without_docstrings(path)
    literals = _string_constants(tree) & RECORD_KEYS
    uses = {
        literal
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for literal in _string_constants(node) & literals
        if "user_attr" in ast.unparse(node.func) or ast.unparse(node.func).endswith(".get")
    }
    subscripts = {
        node.slice.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and node.slice.value in RECORD_KEYS
        and "user_attrs" in ast.unparse(node.value)
    }
    assert not (uses | subscripts), (
        f"{path.name} spells trial-record keys {sorted(uses | subscripts)}; "
        "use optuna_dl.records.TrialRecord"
    )


KNOWN = {_module_name(p) for p in MODULES}


def _imports(path: Path) -> set[str]:
    """optuna_dl modules imported by ``path``, at any depth (inside functions and
    ``TYPE_CHECKING`` blocks too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("optuna_dl"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - (path.name == "__init__.py"))[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.startswith("optuna_dl"):
                for alias in node.names:
                    # ``from optuna_dl.runs import workers`` imports the module workers.
                    submodule = f"{module}.{alias.name}"
                    found.add(submodule if submodule in KNOWN else module)
    return {m for m in found if m in KNOWN}


GRAPH = {_module_name(p): _imports(p) - {_module_name(p)} for p in MODULES}


def test_no_import_cycle():
    """Not even through imports inside functions or under TYPE_CHECKING (package
    ``__init__`` re-exports are left out: they import downwards by design)."""
    packages = {m for m in KNOWN if PACKAGE.joinpath(*m.split(".")[1:], "__init__.py").exists()}
    graph = {module: deps - packages for module, deps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


#: Layer of each package part, low to high; a module imports only from its own layer
#: or lower ones.
LAYERS = [
    ("optuna_dl.nn",),
    (
        "optuna_dl._validation",
        "optuna_dl._persistence",
        "optuna_dl._compat",
        "optuna_dl.callbacks",
        "optuna_dl.datasets",
    ),
    ("optuna_dl.estimator",),
    ("optuna_dl.records", "optuna_dl._pool"),
    ("optuna_dl.tuning",),
    ("optuna_dl.analysis",),
    ("optuna_dl.runs",),
    ("optuna_dl.cli", "optuna_dl"),
]


def _layer(module: str) -> int:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[1]
            ):
                best = (index, len(prefix))
    assert best is not None, module
    return best[0]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_each_module_imports_only_from_its_layer_or_below(module):
    if module == "optuna_dl":  # the package's public names
        return
    upward = sorted(dep for dep in GRAPH[module] if _layer(dep) > _layer(module))
    assert not upward, f"{module} (layer {_layer(module)}) imports {upward} from above"
