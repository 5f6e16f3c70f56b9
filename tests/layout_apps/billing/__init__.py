"""A Django-style app package: its ``tasks`` module is found by ``autodiscover_tasks``."""
