-- max_active_runs: admit one slot of a schedule, unless that many of its slots are live.
-- KEYS[1] active  ZSET  the schedule's admitted slots (member: slot ISO 8601 UTC, score: admitted at, ms)
-- ARGV[1] the slot  ARGV[2] max_active_runs  ARGV[3] now (ms)
-- The caller removes the slots whose runs ended first (ops.firing.Firer.prune). A slot admitted already
-- (another scheduler fired it, or this one before a crash) stays admitted.
-- Reply: 1 admitted, 0 refused (max_active_runs slots are live).
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
