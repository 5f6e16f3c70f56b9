"""A real headless Chromium (Debian's ``chromium`` package) driven by playwright over the DevTools protocol.

playwright's own browser download is not reachable here, so tests launch /usr/bin/chromium
(``WFCELERY_CHROMIUM`` overrides). Missing: the browser tests skip locally and fail under ``CI=true``.
``make test`` installs the package where it can (root + apt-get).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("WFCELERY_CHROMIUM", "/usr/bin/chromium")


def launch_args() -> list[str]:
    # root has no user namespace sandbox here; /dev/shm is small in containers
    return ["--no-sandbox", "--disable-dev-shm-usage"]


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = (
        f"Chromium not found at {CHROMIUM}: install Debian's 'chromium' package "
        "(`make test` does it as root) or set WFCELERY_CHROMIUM"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
