"""Checks that the built docs document every public name of lowbit.

    python docs/check_coverage.py BUILD_DIR [--api-md PATH]

BUILD_DIR is the output of ``sphinx-build -b html docs BUILD_DIR``; its ``objects.inv`` lists every
object the site documents. Run it with the Python that has lowbit (and Sphinx) installed, as the
build does. It fails (exit 1), listing what is missing, unless the site documents

1. every name of ``docs/api_names.txt``: the names the API contract (API.md) specifies, including
   attributes and methods (``lowbit.QTensor.scale``), environment variables and subcommands
   (names marked ``planned`` are not written yet: listed, and required once they import);
2. every name of the installed package's ``__all__``, in ``lowbit`` and, recursively, in each
   ``lowbit.*`` module it exports (``lowbit.nn``, ``lowbit.distill``, ``lowbit.models``, ...);
3. every subcommand ``lowbit --help`` lists;
4. every function the C header ``csrc/include/lowbit/lowbit.h`` declares.

A Python name counts as documented when objects.inv has it, or has another public name of the
same object (``lowbit.distill.History`` is ``lowbit.nn.History``; an inherited method is
documented on its base class).

API.md itself is not in the repository. When it is found -- ``--api-md``, ``$LOWBIT_API_MD``, or
``../shared/API.md`` beside the checkout -- every ``lowbit.x`` name, ``lowbit <command>`` and
``LOWBIT_*`` variable it mentions must also be in ``docs/api_names.txt``, so the copy stays in
step; without it, the copy is the contract.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import types
import zlib
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent


def read_inventory(path: Path) -> dict[str, set[str]]:
    """{role: names} of a Sphinx objects.inv (version 2: four header lines, then zlib text)."""
    data = path.read_bytes()
    lines = data.split(b"\n", 4)
    if not lines[0].startswith(b"# Sphinx inventory version 2"):
        raise SystemExit(f"{path}: not a Sphinx inventory (version 2)")
    text = zlib.decompress(lines[4]).decode()
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        m = re.match(r"(.+?)\s+(\S+):(\S+)\s+(-?\d+)\s+(\S*)\s+(.*)", line)
        if m:
            out.setdefault(f"{m.group(2)}:{m.group(3)}", set()).add(m.group(1))
    return out


def read_api_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(" ".join(line.split()))
    return names


def names_in_api_md(path: Path) -> set[str]:
    """The dotted lowbit names, `lowbit <command>`s and LOWBIT_* variables API.md mentions."""
    text = path.read_text()
    found = set()
    for span in re.findall(r"`([^`]*)`", text):
        found.update(m.group(0) for m in re.finditer(r"\blowbit(?:\.[A-Za-z_]\w*)+", span))
        m = re.fullmatch(r"lowbit ([a-z][\w-]*)", span.strip())
        if m:
            found.add(f"lowbit {m.group(1)}")
    found.update(re.findall(r"\bLOWBIT_[A-Z0-9_]+\b", text))
    return found


def resolve(name: str):
    """The object at a dotted public path (importing the longest module prefix), or raises."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = inspect.getattr_static(obj, attr) if inspect.isclass(obj) else getattr(obj, attr)
        return obj
    raise ImportError(f"no module {parts[0]!r}")


def _identity_matters(obj) -> bool:
    """Objects whose identity says 'the same API' (not ints or strings that happen to be equal)."""
    return isinstance(obj, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                            property, staticmethod, classmethod)) or callable(obj)


def public_names() -> list[str]:
    """lowbit's __all__ and, recursively, that of every lowbit.* module it exports."""
    out, seen = [], set()

    def walk(modname: str):
        if modname in seen:
            return
        seen.add(modname)
        mod = importlib.import_module(modname)
        for n in getattr(mod, "__all__", []):
            full = f"{modname}.{n}"
            obj = getattr(mod, n, None)
            if isinstance(obj, types.ModuleType) and obj.__name__.startswith("lowbit."):
                out.append(obj.__name__)
                walk(obj.__name__)
            else:
                out.append(full)

    walk("lowbit")
    return out


def lowbit_command() -> list[str]:
    exe = shutil.which("lowbit", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "lowbit"]


def subcommands() -> list[str]:
    proc = subprocess.run(lowbit_command() + ["--help"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, COLUMNS="200"))
    if proc.returncode != 0:
        raise SystemExit(f"`lowbit --help` failed: {proc.stderr.strip()}")
    m = re.search(r"\{([\w,-]+)\}", proc.stdout)
    return [f"lowbit {c}" for c in m.group(1).split(",")] if m else []


def c_functions() -> list[str]:
    header = ROOT / "csrc" / "include" / "lowbit" / "lowbit.h"
    if not header.exists():
        return []
    text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
    return sorted(set(re.findall(r"\b(lowbit_\w+)\s*\(", text)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir", type=Path, help="the sphinx-build html output")
    ap.add_argument("--api-md", type=Path, default=None,
                    help="API.md (default: $LOWBIT_API_MD, else ../shared/API.md beside the checkout)")
    args = ap.parse_args()

    inv = read_inventory(args.build_dir / "objects.inv")
    py_documented = set().union(*(v for k, v in inv.items() if k.startswith("py:")))
    envvars = inv.get("std:envvar", set())
    commands = inv.get("std:subcommand", set())
    c_documented = inv.get("c:function", set())

    # the objects behind every documented Python name, for names documented under another path
    by_id: dict[int, str] = {}
    for name in sorted(py_documented):
        try:
            obj = resolve(name)
        except Exception:  # noqa: BLE001 - a documented name that no longer resolves is not ours
            continue
        if _identity_matters(obj):
            by_id.setdefault(id(obj), name)

    problems: list[str] = []

    def check_py(name: str, why: str):
        if name in py_documented:
            return
        try:
            obj = resolve(name)
        except Exception as e:  # noqa: BLE001
            hint = f"it does not import: {type(e).__name__}: {e}"
            try:
                parent = resolve(name.rsplit(".", 1)[0])
            except Exception:  # noqa: BLE001
                parent = None
            if isinstance(e, AttributeError) and inspect.isclass(parent):
                hint = (f"the class has no {name.rsplit('.', 1)[1]!r}: not written yet, or an instance "
                        "attribute, which autodoc sees only with a `#:` comment where __init__ assigns it")
            problems.append(f"{name}: not documented ({why}; {hint})")
            return
        if _identity_matters(obj) and id(obj) in by_id:
            return
        problems.append(f"{name}: not documented ({why})")

    contract = read_api_names(DOCS / "api_names.txt")
    planned = [n.split(" ", 1)[1] for n in contract if n.startswith("planned ")]
    contract = [n for n in contract if not n.startswith("planned ")]
    for name in planned:  # not written yet: once it imports, it must be documented
        try:
            resolve(name)
        except Exception:  # noqa: BLE001
            print(f"planned, not written yet: {name}")
            continue
        check_py(name, "api_names.txt, planned and now written")
    for name in contract:
        if name.startswith("LOWBIT_"):
            if name not in envvars:
                problems.append(f"{name}: environment variable not documented (`.. envvar::`; api_names.txt)")
        elif name.startswith("lowbit "):
            if name not in commands:
                problems.append(f"{name}: subcommand not documented (`.. subcommand::`; api_names.txt)")
        else:
            check_py(name, "api_names.txt")

    api_md = args.api_md or (Path(os.environ["LOWBIT_API_MD"]) if os.environ.get("LOWBIT_API_MD")
                             else ROOT.parent / "shared" / "API.md")
    if api_md.exists():
        missing = sorted(names_in_api_md(api_md) - set(contract) - set(planned))
        for name in missing:
            problems.append(f"{name}: named in {api_md} but not in docs/api_names.txt")
        print(f"API.md: {api_md} ({len(missing)} names missing from docs/api_names.txt)")
    else:
        print(f"API.md: not found at {api_md}; docs/api_names.txt is the contract")

    pub = public_names()
    for name in pub:
        check_py(name, "in __all__")
    cmds = subcommands()
    for name in cmds:
        if name not in commands:
            problems.append(f"{name}: subcommand not documented (`.. subcommand::`; `lowbit --help` lists it)")
    cfuncs = c_functions()
    for name in cfuncs:
        if name not in c_documented:
            problems.append(f"{name}: C function not documented (`.. c:function::`; lowbit/lowbit.h declares it)")

    print(f"checked {len(contract)} contract names, {len(pub)} public names, {len(cmds)} subcommands, "
          f"{len(cfuncs)} C functions against {args.build_dir / 'objects.inv'}")
    if problems:
        print(f"{len(problems)} missing from the docs:")
        for p in problems:
            print(f"  {p}")
        return 1
    print("every name is documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
