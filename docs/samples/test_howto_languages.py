"""How-to: other languages and scripts (docs/howto/other-languages.rst): runs the page's
shell script against the standalone command and checks what it prints."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("standalone.sh")
PAGE = Path(__file__).parent.parent / "howto" / "other-languages.rst"


def printed_on_the_page() -> list[str]:
    """The lines the page says the script prints (its ``It prints:`` block)."""
    text = PAGE.read_text(encoding="utf-8").split("It prints:", 1)[1]
    block = text.split(".. code-block:: text\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if not line.startswith("   "):
            break
        lines.append(line.strip())
    return lines


@pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("curl") and shutil.which("etcd-discovery-fake")),
    reason="needs bash, curl and the etcd-discovery-fake command",
)
def test_the_shell_sample() -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        '"value":"infra0=http://10.0.0.1:2380"',
        '"value":"infra1=http://10.0.0.2:2380"',
        "412",
    ]
    assert printed_on_the_page() == result.stdout.splitlines()
