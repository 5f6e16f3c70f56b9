"""``python -m wfcelery.cli``: the same command line as ``wfcelery``."""

from wfcelery.cli import main

main()
