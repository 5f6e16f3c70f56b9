"""An app that finds its tasks with ``app.autodiscover_tasks()`` (``<package>.tasks`` modules with
``@shared_task``, as Django projects do)."""

from __future__ import annotations

from celery import Celery

import wfcelery
from tests.layout_apps import conf

app = Celery("discovered")
app.conf.update(conf("discovered"))
app.autodiscover_tasks(["tests.layout_apps.billing"])
wfcelery.install(app)
