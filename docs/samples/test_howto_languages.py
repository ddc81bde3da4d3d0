"""How-to: other languages and scripts (docs/howto/other-languages.rst): runs the page's
shell scripts against the standalone command and checks they print what the page says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pagetext import printed_on_the_page

HERE = Path(__file__).parent
PAGE = HERE.parent / "howto" / "other-languages.rst"

pytestmark = pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("curl") and shutil.which("etcd-discovery-fake")),
    reason="needs bash, curl and the etcd-discovery-fake command",
)


def run(script: str) -> list[str]:
    result = subprocess.run(
        ["bash", str(HERE / script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_loopback_script() -> None:
    printed = run("standalone.sh")

    assert printed == [
        '"value":"infra0=http://10.0.0.1:2380"',
        '"value":"infra1=http://10.0.0.2:2380"',
        "412",
    ]
    assert printed_on_the_page(PAGE, "standalone.sh") == printed


def test_the_public_url_script() -> None:
    printed = run("public_url.sh")

    assert printed == ["https://discovery.etcd.io", '"value":"3"']
    assert printed_on_the_page(PAGE, "public_url.sh") == printed


def test_the_verification_script() -> None:
    if shutil.which("jq") is None:
        pytest.skip("needs jq")
    printed = run("verify.sh")

    assert printed == [
        '{"seen":2,"fired":1}',
        '{"count":1,"message":null}',
        "0",
        "PUT 201: method PUT, not DELETE",
        "GET 503: method GET, not DELETE; route new, not machine",
        "GET 200: method GET, not DELETE; route new, not machine",
        "503 /new",
    ]
    assert printed_on_the_page(PAGE, "verify.sh") == printed
