"""Operations on the tracker, used by the client API and the worker side alike (neither imports the other)."""
