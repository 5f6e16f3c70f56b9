"""Tasks of the ``include=`` app: imported by its workers, never by the module that defines the app."""

from __future__ import annotations

from tests.layout_apps.included import app


@app.task(name="shipping.pack")
def pack(order: str) -> list[str]:
    return [order, "box"]


@app.task(name="shipping.label")
def label(packed: list[str]) -> str:
    return "+".join(packed)
