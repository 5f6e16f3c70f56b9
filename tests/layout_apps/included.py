"""An app whose tasks live in modules named by ``include=`` (Celery's "Projects" layout)."""

from __future__ import annotations

import os

from celery import Celery

import wfcelery
from tests.layout_apps import conf

modules = ["tests.layout_apps.shipping"]
if os.environ.get("LAYOUT_BROKEN"):
    modules.append("tests.layout_apps.broken")

app = Celery("included", include=modules)
app.conf.update(conf("included"))
wfcelery.install(app)
