"""A task module whose own import fails (a dependency missing on this host), as happens to real projects."""

from __future__ import annotations

import wfcelery_missing_dependency  # noqa: F401  (not installed anywhere: the import fails)
