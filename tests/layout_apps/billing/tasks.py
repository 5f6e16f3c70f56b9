"""``@shared_task`` tasks, registered in whichever app imports them (here: by autodiscovery)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="billing.charge")
def charge(amount: int) -> int:
    return amount * 100


@shared_task(name="billing.receipt")
def receipt(cents: int) -> str:
    return f"paid {cents} cents"
