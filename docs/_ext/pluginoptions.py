"""What the plugin adds to pytest's command line and ini file, recorded by calling its
``pytest_addoption`` with a stand-in for pytest's ``Parser`` (the documented calls:
``getgroup``, ``addoption``, ``addini``).

Standard library only, unlike ``pluginref`` (Sphinx, docutils): the reference table is
built from it, and tests/test_docs.py checks the pages' console and ini samples with it
where only the ``test`` extra is installed (the README's ``pip install -e '.[test]'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Option:
    flags: tuple[str, ...]
    dest: str
    help: str
    choices: tuple[str, ...] = ()
    metavar: str | None = None


@dataclass
class _Ini:
    name: str
    help: str
    type: str | None
    default: Any


@dataclass
class Recorder:
    """Stands in for pytest's ``Parser`` and its option groups."""

    options: list[_Option] = field(default_factory=list)
    inis: list[_Ini] = field(default_factory=list)

    def getgroup(self, name: str, description: str = "", after: str | None = None) -> Recorder:
        return self

    def addoption(self, *flags: str, **attrs: Any) -> None:
        self.options.append(
            _Option(
                flags=flags,
                dest=attrs.get("dest") or flags[0].lstrip("-").replace("-", "_"),
                help=attrs.get("help", ""),
                choices=tuple(attrs.get("choices") or ()),
                metavar=attrs.get("metavar"),
            )
        )

    def addini(
        self, name: str, help: str, type: str | None = None, default: Any = None, **kwargs: Any
    ) -> None:
        self.inis.append(_Ini(name, help, type, default))
