"""``wfcelery_inline_depth``: a whole number >= 0 (0, the default, turns inline continuation off)."""

from __future__ import annotations

import pytest
from celery import Celery

from wfcelery.errors import ConfigurationError
from wfcelery.settings import Settings


def _app(**conf: object) -> Celery:
    app = Celery("inline", broker="redis://127.0.0.1:1/0", set_as_current=False)  # never connected
    app.conf.update(wfcelery_redis_url="redis://127.0.0.1:1/0", **conf)
    return app


def test_inline_depth_defaults_to_off() -> None:
    assert Settings.from_app(_app()).inline_depth == 0
    assert Settings.from_app(_app(wfcelery_inline_depth=8)).inline_depth == 8


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_inline_depth_must_be_a_whole_number(bad: object) -> None:
    with pytest.raises(ConfigurationError, match=r"wfcelery_inline_depth must be a whole number >= 0"):
        Settings.from_app(_app(wfcelery_inline_depth=bad))
