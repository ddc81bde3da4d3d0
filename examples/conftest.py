"""Load the plugin from a source checkout where the package is not pip-installed.

An installed pytest-etcd-discovery registers itself through its ``pytest11`` entry
point; loading it a second time here would clash, hence the check.
"""

from __future__ import annotations

from importlib.metadata import entry_points

if not any(ep.value == "pytest_etcd_discovery.plugin" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["pytest_etcd_discovery.plugin"]
