"""Turns sphinx-build's warnings into a list of ``file:line: message`` in the source tree.

    sphinx-build -W --keep-going -b html docs /tmp/docs-html 2> /tmp/docs-build.log
    python docs/warnings_to_source.py /tmp/docs-build.log > /tmp/docs-warnings.txt

Run it with the Python the docs were built with (it imports lowbit to find the objects). Sphinx
reports docstring problems against the installed package ("site-packages/lowbit/x.py:docstring of
lowbit.x.f:7") and numpydoc's validation against the object's name only; this prints each one at
its line under python/lowbit/ (the docstring's line for reST errors, the ``def``/``class`` line
for validation), sorted by file and line, one warning per line.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resolve(name: str):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = inspect.getattr_static(obj, attr) if inspect.isclass(obj) else getattr(obj, attr)
        return obj
    raise ImportError(name)


def unwrap(obj):
    for attr in ("fget", "__func__"):
        obj = getattr(obj, attr, None) or obj
    return inspect.unwrap(obj) if callable(obj) else obj


def repo_path(path: str) -> str:
    """site-packages/lowbit/x.py -> python/lowbit/x.py (when it exists in this checkout)."""
    p = Path(path)
    parts = p.parts
    if "lowbit" in parts:
        rel = Path(*parts[len(parts) - 1 - parts[::-1].index("lowbit"):])
        cand = ROOT / "python" / rel
        if cand.exists():
            return str(cand.relative_to(ROOT))
    return path


def where(name: str) -> tuple[str, int, int] | None:
    """(file, line of the def/class, line of the docstring's first line) of a documented name."""
    try:
        obj = unwrap(resolve(name))
        if inspect.ismodule(obj):
            src = inspect.getsource(obj)
            tree = ast.parse(src)
            doc = tree.body[0].lineno if tree.body and isinstance(tree.body[0], ast.Expr) else 1
            return repo_path(inspect.getsourcefile(obj)), 1, doc
        lines, start = inspect.getsourcelines(obj)
        file = inspect.getsourcefile(obj)
    except (TypeError, OSError, ImportError, AttributeError):
        return None
    tree = ast.parse(textwrap.dedent("".join(lines)))
    node = tree.body[0] if tree.body else None
    doc = start
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
            doc = start + first.lineno - 1
    return repo_path(file), start, doc


def main() -> int:
    log = Path(sys.argv[1]).read_text().splitlines()
    out: list[tuple[str, int, str]] = []
    docs = ROOT / "docs"
    i = 0
    while i < len(log):
        line = log[i]
        m = re.match(r"(.*?):docstring of ([\w.]+):(\d+): (WARNING|ERROR): (.*)", line)
        if m:
            loc = where(m.group(2))
            n = int(m.group(3))
            if loc:
                # autodoc's line N of the docstring (numpydoc adds one line before it)
                out.append((loc[0], loc[2] + max(n - 2, 0), f"{m.group(4)}: {m.group(5)} (docstring of {m.group(2)})"))
            else:
                out.append((repo_path(m.group(1)), 0, f"{m.group(4)}: {m.group(5)} (docstring of {m.group(2)})"))
            i += 1
            continue
        m = re.match(r"WARNING: \[numpydoc\] Validation warnings while processing docstring for '([\w.]+)':", line)
        if m:
            name = m.group(1)
            loc = where(name)
            i += 1
            while i < len(log) and re.match(r"\s+[A-Z]{2}\d{2}: ", log[i]):
                msg = log[i].strip()
                out.append((loc[0], loc[1], f"numpydoc {msg} ({name})") if loc else ("?", 0, f"numpydoc {msg} ({name})"))
                i += 1
            continue
        m = re.match(r"WARNING: autodoc: failed to import '([\w.]+)' from module '([\w.]+)'", line)
        if m:
            full = f"{m.group(2)}.{m.group(1)}"
            err = ""
            j = i + 1
            while j < len(log) and not log[j].startswith(("WARNING", "/")) and "[autodoc.import_object]" not in log[j]:
                if re.match(r"\w*(Error|Exception)\b", log[j]):
                    err = log[j].strip()
                j += 1
            hit = ("docs/?", 0)
            for rst in sorted(docs.glob("*.rst")):
                for k, text in enumerate(rst.read_text().splitlines(), 1):
                    if re.search(rf"::\s+{re.escape(full)}\s*$", text):
                        hit = (str(rst.relative_to(ROOT)), k)
            out.append((hit[0], hit[1], f"WARNING: autodoc cannot import {full}: {err}"))
            i = j + 1
            continue
        m = re.match(r"(/\S+?|[\w./-]+\.rst):(\d+): (WARNING|ERROR): (.*)", line)
        if m:
            out.append((repo_path(m.group(1)), int(m.group(2)), f"{m.group(3)}: {m.group(4)}"))
        elif re.match(r"(WARNING|ERROR):", line):
            out.append(("?", 0, line))
        i += 1
    for file, n, msg in sorted(out, key=lambda t: (t[0], t[1], t[2])):
        print(f"{file}:{n}: {msg}")
    print(f"# {len(out)} warnings", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
