"""Commands that watch the fleet: ``metrics`` (the standalone Prometheus exporter)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from wfcelery.cli.base import engine_of, epilog, errors_to_exit, fail


@click.command(
    "metrics",
    epilog=epilog("""
wfcelery -A proj.celery:app metrics                    # http://0.0.0.0:9808/metrics
wfcelery -A proj.celery:app metrics --port 9100 --host 127.0.0.1"""),
)
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=9808, show_default=True)
@click.pass_context
@errors_to_exit
def metrics(ctx: click.Context, host: str, port: int) -> None:
    """Serve the fleet-wide Prometheus metrics (needs the extra: pip install 'wfcelery[metrics]').

    Every scrape reads the counters the tracker keeps as transitions happen: any number of exporters
    show the same numbers, and a restart loses nothing. While the tracker's Redis is away, scrapes
    answer with wfcelery_tracker_up 0. Runs until interrupted (Ctrl-C or SIGTERM).
    """
    try:
        from wfcelery.metrics import serve
    except ImportError as e:
        fail(str(e))
    engine = engine_of(ctx)
    engine.metrics()  # fail now, with one clear line, when the tracker's Redis is unreachable
    try:
        server, _ = serve(engine.metrics, port, host)
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e}")
    stop = threading.Event()

    def stopped(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopped)
    click.echo(f"wfcelery metrics on http://{host}:{server.server_port}/metrics", err=True)
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    server.shutdown()
