-- settle: a submit whose create call failed without an answer (a timeout, a lost connection: the write may
-- or may not have reached Redis, and may still land later) decides, atomically, what happened.
-- The run exists -> 'exists': the client publishes its roots and confirms it (Tracker.confirm_run).
-- Otherwise the run's tombstone is written -> 'void': create.lua refuses this run for good, and the client
-- tells its caller nothing was submitted. Scripts run one at a time, so exactly one of the two orders wins.
-- KEYS[1..6] the run's keys (keys.RUN_KEYS order)   KEYS[7] the counters (_common.lua)   KEYS[8] its tombstone
-- ARGV[1] the tombstone's TTL (seconds: wfcelery_run_ttl)
-- Returns 'exists' or 'void'.
if redis.call('EXISTS', K_RUN) == 1 then
  return 'exists'
end
redis.call('SET', KEYS[8], '1', 'EX', ARGV[1])
return 'void'
