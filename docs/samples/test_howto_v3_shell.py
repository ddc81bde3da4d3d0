"""How-to: etcd 3.6 v3 discovery (docs/howto/etcd-v3.rst), from a shell suite: runs the
page's script against the command with ``--v3-port`` and checks it prints what the page
says."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
from pagetext import printed_on_the_page

HERE = Path(__file__).parent
PAGE = HERE.parent / "howto" / "etcd-v3.rst"
SCRIPT = "v3_shell.sh"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("bash", "curl", "jq", "etcdctl", "etcd-discovery-fake"))
    or importlib.util.find_spec("grpc") is None,
    reason="needs bash, curl, jq, etcdctl, the etcd-discovery-fake command and the etcd-v3 extra",
)


def test_the_v3_shell_script() -> None:
    result = subprocess.run(
        ["bash", str(HERE / SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()

    assert printed == [
        "2",
        "201",
        "201",
        "409",
        "m0=http://10.0.0.0:2380,m1=http://10.0.0.1:2380",
        "etcdctl failed",
        '{"fired":1}',
        "Range /_etcd/registry/demo/_config/size OK",
        "Range /_etcd/registry/demo/_config/size FAILED_PRECONDITION",
        "0",
    ]
    assert printed_on_the_page(PAGE, SCRIPT) == printed
