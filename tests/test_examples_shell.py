"""``examples/shell/test_provision.sh``: the shell example suite runs green (``.ci/run``
runs it too, as a user would)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from realutil import SKIP_PREFIX, skip_or_fail

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "shell" / "test_provision.sh"


def test_the_shell_example_suite_passes() -> None:
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        skip_or_fail(f"{SKIP_PREFIX}: {', '.join(missing)} (the shell example needs them)")
    repo = str(SCRIPT.parent.parent.parent)
    env = {
        **os.environ,
        # This checkout's fake, whatever is installed.
        "FAKE": f"{sys.executable} -m pytest_etcd_discovery",
        "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "all checks passed"
    assert not [line for line in lines if line.startswith("FAIL")]
    assert sum(line.startswith("ok ") for line in lines) == 23
