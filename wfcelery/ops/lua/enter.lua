-- enter: a run of a workflow with max_active_runs asks for its turn (ops/admission.py). Not per run: the
-- admission group's two keys share the group's hash tag; the run itself was created QUEUED just before.
-- KEYS[1] active  ZSET  the group's admitted runs (member: run id, score: admitted at, ms)
-- KEYS[2] queue   ZSET  the group's QUEUED runs (member: run id, score: submit order)
-- ARGV[1] run id   ARGV[2] max_active_runs
-- Admitted when fewer than the limit are active and none waits before it (submit order is kept: a run
-- never overtakes a queued one). Asking again is harmless: the answer is where the run already is.
-- Reply: 'admitted' (the caller starts it: admit_run.lua) or 'queued'.
local run, limit = ARGV[1], tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], run) then
  return 'admitted'
end
if redis.call('ZSCORE', KEYS[2], run) then
  return 'queued'
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('ZCARD', KEYS[1]) < limit and redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('ZADD', KEYS[1], math.floor(now_us / 1000), run)
  return 'admitted'
end
-- the order: Redis's clock in microseconds, and always after the last run queued (same microsecond)
local order = now_us
local tail = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #tail == 2 and tonumber(tail[2]) >= order then
  order = tonumber(tail[2]) + 1
end
redis.call('ZADD', KEYS[2], order, run)
return 'queued'
