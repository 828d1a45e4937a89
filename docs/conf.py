"""Sphinx configuration of lowbit's documentation site.

Build (what CI runs; warnings are errors)::

    pip install ".[docs]"        # lowbit itself must be importable: autodoc documents the installed package
    sphinx-build -W --keep-going -b html docs /tmp/docs-html
    python docs/check_coverage.py /tmp/docs-html

The API reference (api.rst) documents every name by its public import path (``lowbit.quantize``,
``lowbit.nn.Linear``), never by the module that defines it, so moving code between modules does
not change the docs. Docstrings are numpydoc-style and checked by numpydoc's validation (below).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

import lowbit

project = "lowbit"
author = "the lowbit developers"
copyright = "the lowbit developers"
release = lowbit.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
]

# The generated benchmark outputs kept in docs/ (docs/*.txt, docs/*.md) are not pages.
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
templates_path: list[str] = []

html_theme = "alabaster"
html_title = f"lowbit {release}"
html_theme_options = {
    "description": "Quantization, k-means codebooks and distillation for neural networks on CPUs",
    "fixed_sidebar": True,
}
html_static_path: list[str] = []

# --- autodoc ---------------------------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "undoc-members": True,        # an undocumented public member is listed (and numpydoc flags it)
    "member-order": "bysource",
    "special-members": "__call__",
}
autodoc_typehints = "signature"
autodoc_inherit_docstrings = True
autoclass_content = "class"       # numpydoc: the constructor's parameters are in the class docstring
add_module_names = True
python_display_short_name = False

# --- numpydoc ----------------------------------------------------------------------------------
numpydoc_show_class_members = False   # members come from autodoc's :members:, not autosummary tables
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False
# Checks every documented docstring against the numpydoc standard; with -W a failing check is an
# error. GL08: no docstring. PR01/PR02: a parameter not documented / documented but not in the
# signature. GL06/GL07: unknown section / sections out of order. SS06 etc. are left out on purpose.
numpydoc_validation_checks = {"GL08", "PR01", "PR02", "GL06", "GL07", "RT03"}
numpydoc_validation_exclude = {
    r"\.__call__$",      # documented by the class
    r"\.__init__$",
    r"\.__repr__$",
}


# --- the command line ------------------------------------------------------------------------
def _lowbit_command() -> list[str]:
    """The installed `lowbit` command (the console script beside this Python), else python -m."""
    exe = shutil.which("lowbit", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "lowbit"]


class LowbitHelp(SphinxDirective):
    """``.. lowbit-help:: demo`` inserts what ``lowbit demo --help`` prints (no argument: ``lowbit
    --help``), so the CLI page always matches the installed command."""

    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = {"caption": directives.unchanged}

    def run(self):
        args = self.arguments[0].split() if self.arguments else []
        env = dict(os.environ, COLUMNS="100", LOWBIT_NUM_THREADS="1")
        proc = subprocess.run(_lowbit_command() + args + ["--help"], capture_output=True, text=True,
                              env=env, timeout=120)
        if proc.returncode != 0:
            msg = f"`lowbit {' '.join(args)} --help` failed ({proc.returncode}): {proc.stderr.strip()}"
            return [self.state.document.reporter.warning(msg, line=self.lineno)]
        block = nodes.literal_block(proc.stdout, proc.stdout)
        block["language"] = "text"
        return [block]


def setup(app):
    app.add_directive("lowbit-help", LowbitHelp)
    # `.. subcommand:: lowbit demo` documents a subcommand (std:subcommand in objects.inv, which
    # check_coverage.py reads) and :subcommand:`lowbit demo` links to it.
    app.add_object_type("subcommand", "subcommand", indextemplate="pair: %s; command")
    return {"parallel_read_safe": True}
