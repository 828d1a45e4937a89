"""The package's layer contract (docs/architecture.rst): each module of python/lowbit imports only
modules of its own layer or of the layers below it, and the imports have no cycle. Imports inside
functions count too: a lazy import that reaches upward is still an upward dependency.

Checked on the source files with ast (no import-linter dependency), so it holds for the wheel and
the source tree alike."""
import ast
import pathlib

import pytest

import lowbit

ROOT = pathlib.Path(lowbit.__file__).parent

#: layer of each top-level module or package of lowbit, bottom first
LAYERS = [
    {"_core", "_checks", "io"},                                              # core and file format
    {"quant", "linear", "int4", "codebook", "nonlinear", "compress", "observers"},  # tensor, layer API
    {"models"},                                                              # inference models
    {"deploy", "onnx_export"},                                               # export
    {"nn", "distill"},                                                       # learning
    {"tools", "dask", "torch"},                                              # CLI, reports, Dask
]
RANK = {name: r for r, names in enumerate(LAYERS) for name in names}
EXEMPT = {"__init__", "__main__"}  # the package's public face re-exports every layer

#: source files allowed over MAX_LINES, with the reason. Python files are measured without their
#: docstrings: the numpydoc reference (every parameter, return value and exception of every public
#: function) is documentation, and counting it would push a 400-line module of layers over the limit.
MAX_LINES = 600
LONG_FILES: dict = {}


def _code_lines(p: pathlib.Path) -> int:
    """Lines of a source file, a Python file's docstrings left out."""
    text = p.read_text(errors="replace")
    n = len(text.splitlines())
    if p.suffix != ".py":
        return n
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            n -= body[0].end_lineno - body[0].lineno + 1
    return n


def _modules():
    """{dotted name relative to lowbit: path} of every .py file of the package."""
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1] or ["__init__"]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: pathlib.Path) -> set:
    """The lowbit modules `name` imports (dotted, relative to lowbit), wherever the import is."""
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "lowbit" or a.name.startswith("lowbit."):
                    found.add(a.name[len("lowbit."):] if a.name != "lowbit" else "__init__")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - (node.level - 1)] if node.level > 1 else list(pkg)
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "lowbit" or node.module.startswith("lowbit.")):
                mod = node.module[len("lowbit."):] if node.module != "lowbit" else ""
            else:
                continue
            if mod == "" or mod == "__init__":
                # `from lowbit import x` / `from . import x` at the top: x is a module or a name
                for a in node.names:
                    found.add(a.name if a.name in RANK else "__init__")
            else:
                found.add(mod)
    return found


def _top(mod: str) -> str:
    return mod.split(".")[0]


def test_every_module_has_a_layer():
    missing = {_top(m) for m in _modules()} - set(RANK) - EXEMPT
    assert not missing, f"add these to LAYERS (and to docs/architecture.rst): {sorted(missing)}"


def test_imports_go_down_the_layers():
    bad = []
    for name, path in _modules().items():
        if _top(name) in EXEMPT:
            continue
        for dep in _imports(name, path):
            top = _top(dep)
            if top in EXEMPT:
                if RANK[_top(name)] < len(LAYERS) - 1:  # the top layer may use the public face
                    bad.append(f"{name} imports the lowbit package itself ({dep})")
            elif RANK[top] > RANK[_top(name)]:
                bad.append(f"{name} (layer {RANK[_top(name)]}) imports {dep} (layer {RANK[top]})")
    assert not bad, "\n".join(bad)


def test_io_imports_nothing_of_lowbit():
    assert _imports("io", ROOT / "io.py") == set()


def test_no_import_cycle():
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        if _top(name) in EXEMPT:
            continue
        deps = set()
        for d in _imports(name, path):
            # a package import means its __init__, which is the module named like the package
            if d in mods and _top(d) not in EXEMPT and d != name:
                deps.add(d)
        graph[name] = deps
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in graph.get(n, ()):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                # a package importing its own submodules (re-exports) is not a cycle of layers
                if not all(c == cycle[0] or c.startswith(cycle[0] + ".") for c in cycle):
                    pytest.fail("import cycle: " + " -> ".join(cycle))
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n)


def test_source_files_are_short():
    repo = ROOT.parent.parent
    paths = list(ROOT.rglob("*.py"))
    if (repo / "csrc").is_dir():  # the source tree (not an installed wheel): C++ and the bench too
        paths += [p for ext in ("*.cc", "*.h") for p in (repo / "csrc").rglob(ext)]
        paths += list((repo / "bench").rglob("*.py"))
    long = {}
    for p in paths:
        n = _code_lines(p)
        if n > MAX_LINES and p.name not in LONG_FILES:
            long[str(p.relative_to(repo if (repo / "csrc").is_dir() else ROOT))] = n
    assert not long, f"over {MAX_LINES} lines (split them, or add a reason to LONG_FILES): {long}"
