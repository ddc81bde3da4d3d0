"""The test suite on the lowest and on the newest versions the package declares.

``python3 -m nox`` runs both sessions, each in a fresh virtualenv; ``.ci/run`` does too.
``lowest`` pins every runtime dependency to the bottom of its range in
``pyproject.toml`` (read from there, so the ranges and this file cannot drift apart);
``newest`` lets pip pick the newest of everything.  Extra arguments go to pytest:
``python3 -m nox -s lowest -- -m "not real" -x``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # the tomli backport has the same API
    import tomli as tomllib

nox.options.sessions = ["lowest", "newest"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).resolve().parent
#: Each session runs this and then its own arguments (``.ci/run`` passes none).  Both
#: install the ``test`` extra alone, as README.md's test command does.
PYTEST = ("python", "-m", "pytest", "-p", "no:cacheprovider", "-q")


#: Optional extras whose lowest versions the ``lowest`` session pins too (the ``test``
#: extra pulls them in).
PINNED_EXTRAS = ("etcd-v3",)


def lowest_pins() -> list[str]:
    """``name==lowest`` for every runtime dependency declared as ``name>=lowest``, the
    :data:`PINNED_EXTRAS`' included."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = []
    extras = project.get("optional-dependencies", {})
    requirements = [*project["dependencies"], *(r for x in PINNED_EXTRAS for r in extras[x])]
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9A-Za-z.]*)", requirement.strip())
        if match is None:
            raise ValueError(f"pyproject.toml: give {requirement!r} as name>=lowest")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


def _run_tests(session: nox.Session) -> None:
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run(*PYTEST, *session.posargs)


@nox.session(venv_backend="venv")
def lowest(session: nox.Session) -> None:
    """The suite on the lowest declared pytest, werkzeug, responses and requests (and
    grpcio and protobuf, the ``etcd-v3`` extra's)."""
    constraints = Path(session.create_tmp()) / "lowest.txt"
    constraints.write_text("\n".join(lowest_pins()) + "\n", encoding="utf-8")
    session.install("-c", str(constraints), "-e", ".[test]")
    _run_tests(session)


@nox.session(venv_backend="venv")
def newest(session: nox.Session) -> None:
    """The suite on the newest release of every dependency."""
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[test]")
    _run_tests(session)
