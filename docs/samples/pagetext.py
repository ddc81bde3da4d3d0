"""What a docs page says a sample script prints (the samples' tests compare it with what
the script printed when they ran it)."""

from __future__ import annotations

from pathlib import Path


def printed_on_the_page(page: Path, script: str) -> list[str]:
    """The lines ``page`` says ``script`` prints: the ``text`` block after its include."""
    text = page.read_text(encoding="utf-8").split(f"samples/{script}", 1)[1]
    block = text.split(".. code-block:: text\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if not line.startswith("   "):
            break
        lines.append(line.strip())
    return lines
