"""wfcelery benchmarks: wfcelery against plain Celery canvas of the same shape, on the same Redis and workers.

Run ``python -m benchmarks.run --quick`` (about a minute) or ``--full`` (``make bench``); README.md here maps
the modules, and the docs' Benchmarks page has the results.
"""
