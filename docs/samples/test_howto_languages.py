"""How-to: other languages and scripts (docs/howto/other-languages.rst): runs the page's
shell script against the standalone command and checks what it prints."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("standalone.sh")


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
