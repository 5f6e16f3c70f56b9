"""Map-reduce: split a text into chunks, count words in parallel (fan-out), merge the counts (fan-in).

Run it (Redis on localhost:6379)::

    celery -A examples.app worker -Q cpu,celery -n cpu@%h -c 4 -l INFO  # terminal 1
    python -m examples.map_reduce 8                                     # terminal 2: 8 mappers

The reducer has one parent per mapper, so it gets one list of their results, in the mappers' order --
the same result semantics as a Celery chord, with any number of mappers.
"""

from __future__ import annotations

import sys
from typing import Any

import wfcelery
from examples.app import count_words, engine, merge_counts

TEXT = (
    "the quick brown fox jumps over the lazy dog and the dog sleeps while the fox runs "
    "into the brown woods where a quick river runs past the lazy town "
) * 40


def build(mappers: int = 8, text: str = TEXT) -> wfcelery.Workflow:
    words = text.split()
    size = -(-len(words) // mappers)  # ceil
    wf = wfcelery.Workflow("word-count")
    maps = [
        wf.add(f"map_{i}", count_words, args=[" ".join(words[i * size : (i + 1) * size])], type="cpu")
        for i in range(mappers)
    ]
    maps >> wf.add("reduce", merge_counts, kwargs={"top": 3}, type="cpu")
    return wf


def main(mappers: int = 8, timeout: float = 60) -> list[Any]:
    run = engine.submit(build(int(mappers)))
    top = run.wait(timeout=timeout)["reduce"]
    print(f"run {run.id}: top words {top}")
    return list(top)


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:2]])
