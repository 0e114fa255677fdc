"""The directory where one host's processes share their Prometheus samples (multiprocess mode).

It is `<PROMETHEUS_MULTIPROC_DIR or $DATA_DIR/prometheus>/<HOST_NAME>`: one per host, even when
hosts share DATA_DIR on a network disk, so a host that starts empties only its own samples (an
earlier run's would be counted again) and a scrape of a host sums that host's processes only.
Kept apart from metrics.py because it must run before anything imports prometheus_client, which
picks its multiprocess mode from the environment at import.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any


def host_directory(settings: dict[str, Any]) -> Path:
    base = Path(settings.get("PROMETHEUS_MULTIPROC_DIR") or Path(settings["DATA_DIR"]) / "prometheus")
    # Already this host's (the master re-reading its configuration on HUP inherits what it set).
    return base if base.name == settings["HOST_NAME"] else base / settings["HOST_NAME"]


def fresh_host_directory(settings: dict[str, Any]) -> str:
    """This host's directory, made if missing and emptied of prometheus_client's files (only those)."""
    directory = host_directory(settings)
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in glob.glob(os.path.join(directory, "*.db")):
        os.remove(leftover)
    return str(directory)
