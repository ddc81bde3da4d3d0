"""The two commands README.md opens with, read from it so that nothing can drift from them.

README.md's first code block holds exactly two commands, one a line: the main job, then
"install and pass the tests" (a comment after either is dropped). ``.ci/run`` runs each
exactly as written in a fresh virtual environment; tests/test_readme.py checks what they
are.

Usage: ``python3 .ci/readme_commands.py main|test`` prints that command.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
#: The commands' names, in the order the block gives them.
NAMES = ("main", "test")


def opening_commands(readme: str) -> dict[str, str]:
    """``{"main": ..., "test": ...}`` from the first fenced code block of ``readme``."""
    block = re.search(r"^```[\w-]*\n(.*?)^```$", readme, re.M | re.S)
    if block is None:
        raise ValueError("README.md has no code block")
    # A comment starts with "#" after white space; the commands themselves have none.
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block[1].splitlines()]
    commands = [line for line in lines if line]
    if len(commands) != len(NAMES):
        raise ValueError(f"README.md's first code block: {len(commands)} commands, not 2")
    return dict(zip(NAMES, commands, strict=True))


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in NAMES:
        print(f"usage: {Path(__file__).name} {'|'.join(NAMES)}", file=sys.stderr)
        return 2
    print(opening_commands(README.read_text(encoding="utf-8"))[argv[0]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
