"""Sphinx configuration for the pytest-etcd-discovery documentation.

Built in CI with ``python -m sphinx -W -b html docs docs/_build/html``: a warning fails
the build. Python samples live in ``samples/`` and are pulled in with ``literalinclude``;
pytest runs them (``testpaths``), so a sample that stops working fails CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the package from this checkout

import pytest_etcd_discovery  # noqa: E402

project = "pytest-etcd-discovery"
author = "pytest-etcd-discovery contributors"
copyright = "the pytest-etcd-discovery contributors"
release = pytest_etcd_discovery.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "pluginref",
    "pagecode",  # the tutorial's and how-tos' blocks: what .ci/wheel_test.py runs
]

exclude_patterns = ["_build", "samples"]
templates_path: list[str] = []
html_theme = "furo"
html_title = f"pytest-etcd-discovery {release}"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
# Names that annotations mention but the docs do not document as targets.
nitpicky = False
