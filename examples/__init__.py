"""wfcelery examples: run them against a Redis on localhost (see each file's header for the commands)."""
