"""The Redis tracker: key layout, stored formats, states, the Tracker that runs the Lua scripts."""
