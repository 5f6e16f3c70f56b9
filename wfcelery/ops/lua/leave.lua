-- leave: a run of an admission group ended (or, with ARGV[1] '', the reconciler looks for room): it no
-- longer counts, and the QUEUED runs first in submit order take the free places (ops/admission.py).
-- KEYS[1] active  ZSET  the group's admitted runs (member: run id, score: admitted at, ms)
-- KEYS[2] queue   ZSET  the group's QUEUED runs (member: run id, score: submit order)
-- ARGV[1] the run that left ('' = none)   ARGV[2] max_active_runs
-- Reply: the run ids admitted now, in order; the caller starts each (admit_run.lua). One that is no longer
-- QUEUED there (cancelled meanwhile) leaves again at once, and the next takes its place.
local run, limit = ARGV[1], tonumber(ARGV[2])
if run ~= '' then
  redis.call('ZREM', KEYS[1], run)
  redis.call('ZREM', KEYS[2], run)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local admitted = {}
while redis.call('ZCARD', KEYS[1]) < limit do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #head == 0 then
    break
  end
  redis.call('ZREM', KEYS[2], head[1])
  redis.call('ZADD', KEYS[1], now, head[1])
  table.insert(admitted, head[1])
end
return admitted
