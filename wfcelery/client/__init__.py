"""The client API: Engine (submit, control, runs) and Run."""
