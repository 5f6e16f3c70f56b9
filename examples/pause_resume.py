"""Pause and resume a run: running nodes finish, nothing new starts until resume.

Run it (Redis on localhost:6379)::

    celery -A examples.app worker -Q io,cpu,celery -n all@%h -l INFO  # terminal 1
    python -m examples.pause_resume                                   # terminal 2

From a shell, the same with the CLI::

    RUN=$(wfcelery -A examples.app submit examples/etl.yaml --param day=2026-11-22)
    wfcelery -A examples.app pause $RUN
    wfcelery -A examples.app status $RUN
    wfcelery -A examples.app resume $RUN
    wfcelery -A examples.app watch $RUN
"""

from __future__ import annotations

import time
from typing import Any

import wfcelery
from examples.app import engine, slow_step


def build(seconds: float = 1.0) -> wfcelery.Workflow:
    wf = wfcelery.Workflow("pause-resume")
    steps = [
        wf.add(f"step_{i}", slow_step, kwargs={"seconds": seconds, "step": f"step_{i}"}) for i in range(3)
    ]
    steps[0] >> steps[1] >> steps[2]
    return wf


def _wait_for(run: wfcelery.Run, node: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while run.state().nodes[node].status.value != status:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{node} did not become {status}")
        time.sleep(0.05)


def main(seconds: float = 1.0, timeout: float = 60) -> dict[str, Any]:
    run = engine.submit(build(seconds))
    _wait_for(run, "step_0", "RUNNING")
    state = run.pause()
    print(f"paused while step_0 runs: run is {state.status.value}")
    time.sleep(seconds + 0.5)  # step_0 finishes and is recorded; step_1 does not start
    nodes = {name: n.status.value for name, n in run.state().nodes.items()}
    print(f"while paused: {nodes}")
    run.resume()
    results = run.wait(timeout=timeout)
    print(f"after resume: {results}")
    return {"while_paused": nodes, "results": results}


if __name__ == "__main__":
    main()
