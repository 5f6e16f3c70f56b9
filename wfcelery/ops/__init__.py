"""The operations layer: run keys, schedules and the scheduler loop, nodes with no task (waits, signals,
durable timers and their loop, child runs), on the tracker, used by both the client API and the worker
side (neither imports the other; both import this)."""
