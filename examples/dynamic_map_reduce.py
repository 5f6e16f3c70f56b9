"""Map-reduce over a list known only at run time: split a text, count words per chunk, merge.

Run it (Redis on localhost:6379)::

    celery -A examples.app worker -Q cpu,celery -n cpu@%h -c 4 -l INFO  # terminal 1
    python -m examples.dynamic_map_reduce 40                            # terminal 2: 40 words per chunk

``split`` returns a list; ``count`` maps over it -- one instance per chunk, tracked as ``count[0]``,
``count[1]``, ... -- and ``merge`` gets the list of their results in chunk order. The width is decided by
the data, not by the definition (compare examples/map_reduce.py, where it is fixed when building).
"""

from __future__ import annotations

import sys
from typing import Any

import wfcelery
from examples.app import count_words, engine, merge_counts, split_text
from examples.map_reduce import TEXT


def build(words_per_chunk: int = 50) -> wfcelery.Workflow:
    wf = wfcelery.Workflow("dynamic-word-count")
    split = wf.add("split", split_text, args=["${text}", words_per_chunk], type="cpu")
    count = wf.add("count", count_words, map=split, type="cpu")  # one instance per chunk
    wf.add("merge", merge_counts, after=count, kwargs={"top": 3}, type="cpu")
    return wf


def main(words_per_chunk: int = 50, timeout: float = 60) -> list[Any]:
    run = engine.submit(build(int(words_per_chunk)), params={"text": TEXT})
    top = run.wait(timeout=timeout)["merge"]
    chunks = sum(1 for name in run.state().nodes if name.startswith("count["))
    print(f"run {run.id}: {chunks} chunks counted in parallel, top words {top}")
    return list(top)


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:2]])
