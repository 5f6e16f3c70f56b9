"""Screenshots of the dashboard for the docs: ``make screenshots`` (writes docs/dashboard-*.png).

Everything real: a throwaway Redis, an in-process Celery worker, the ASGI server and Debian's Chromium.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

import wfcelery
from tests.helpers import in_thread_worker
from tests.proj import make_app
from tests.redis_server import RedisServer
from tests.web.browser import CHROMIUM, launch_args
from tests.web.conftest import Server

DOCS = Path(__file__).resolve().parents[2] / "docs"


def nightly() -> wfcelery.Workflow:
    wf = wfcelery.Workflow("nightly-etl", params={"day": "2026-12-01"})
    slow = {"sleep": 0.4}
    extract = [wf.add(f"extract_{s}", "proj.record", kwargs=slow) for s in ("orders", "customers", "stock")]
    clean = [wf.add(f"clean_{s}", "proj.record", kwargs=slow) for s in ("orders", "customers")]
    extract[0] >> clean[0]
    extract[1] >> clean[1]
    join = wf.add("join_tables", "proj.record", kwargs={"sleep": 1.5}, after=[*clean, extract[2].name])
    score = wf.add("score_customers", "proj.record", kwargs={"sleep": 6})
    forecast = wf.add("forecast_demand", "proj.record", kwargs={"sleep": 6})
    join >> [score, forecast]
    report = wf.add(
        "build_report", "proj.record", after=[score.name, forecast.name], kwargs={"day": "${day}"}
    )
    report >> [wf.add("publish_dashboard", "proj.record"), wf.add("notify_team", "proj.record")]
    return wf


def wide(width: int = 100, layers: int = 100) -> wfcelery.Workflow:
    """10,000 nodes: each waits for two nodes of the layer before it."""
    wf = wfcelery.Workflow("backfill-10k")
    for layer in range(layers):
        for i in range(width):
            after = [] if layer == 0 else [f"part{layer - 1}_{i}", f"part{layer - 1}_{(i + 1) % width}"]
            wf.add(f"part{layer}_{i}", "proj.noop", after=after)
    return wf


def broken() -> wfcelery.Workflow:
    wf = wfcelery.Workflow("invoice-sync")
    wf.add("fetch", "proj.add", args=[1, 2]) >> wf.add(
        "validate", "proj.fail", kwargs={"message": "bad VAT id"}
    )
    return wf


def main() -> int:
    DOCS.mkdir(exist_ok=True)
    redis = RedisServer().start()
    url = redis.url + "/1"
    app = make_app(url, url, "shots", "shots", wfcelery_flower_url="http://localhost:5555")
    engine = app._wfcelery_engine
    engine.register(nightly())
    engine.register(broken())
    server = Server(engine).start()
    try:
        with in_thread_worker(app, ["shots"], concurrency=4), sync_playwright() as p:
            failed = engine.submit(broken())
            done = engine.submit(nightly(), params={"day": "2026-11-30"})
            time.sleep(0.5)
            run = engine.submit(nightly())
            browser = p.chromium.launch(executable_path=CHROMIUM, args=launch_args())
            page = browser.new_page(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
            page.goto(f"{server.url}/runs/{run.id}")
            page.wait_for_selector('[data-node="forecast_demand"][data-status="RUNNING"]', timeout=20_000)
            page.click('[data-node="clean_orders"]')
            page.wait_for_selector("#node-result")
            time.sleep(0.3)
            page.screenshot(path=str(DOCS / "dashboard-run.png"), full_page=True)
            with contextlib.suppress(wfcelery.RunFailed):
                failed.wait(timeout=20)
            done.wait(timeout=30)
            page.goto(f"{server.url}/")
            page.wait_for_selector(f'tr[data-run="{failed.id}"]')
            page.screenshot(path=str(DOCS / "dashboard-runs.png"))
            page.goto(f"{server.url}/definitions/nightly-etl")
            page.wait_for_selector("#start-run")
            page.screenshot(path=str(DOCS / "dashboard-definition.png"))
            page.goto(f"{server.url}/runs/{failed.id}")
            page.click('[data-node="validate"]')
            page.wait_for_selector("#node-error")
            page.screenshot(path=str(DOCS / "dashboard-failed.png"))
            run.wait(timeout=60)
            big = engine.submit(wide())
            page.goto(f"{server.url}/runs/{big.id}")
            page.wait_for_selector("canvas#grid")
            deadline = time.monotonic() + 60
            while big.state().counts["SUCCEEDED"] < 2500 and time.monotonic() < deadline:
                time.sleep(0.2)
            big.pause()
            page.wait_for_selector('#run-status [data-status="PAUSED"]')
            time.sleep(0.5)
            page.screenshot(path=str(DOCS / "dashboard-10k.png"))
            browser.close()
            big.cancel()
    finally:
        server.stop()
        app._wfcelery_worker.close_gate()  # the in-thread worker's lease and filter
        redis.stop()
    print(f"screenshots written to {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
