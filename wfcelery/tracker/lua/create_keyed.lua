-- Create a run that holds a run key, in one atomic step (a single Redis, not a Cluster: the key's index
-- key and the run's keys live in different Cluster slots). What Tracker.create_run writes, plus the claim.
-- KEYS[1] runkey  STRING  the claim (records.RunKeyClaim)
-- KEYS[2] run     HASH    the run record (records.new_run)
-- KEYS[3] nodes   HASH    node records of the queued roots
-- KEYS[4] events  STRING  the run's event log (the roots' Q lines)
-- KEYS[5] index   ZSET    the run index
-- KEYS[6] live    SET     runs the reconciler watches
-- KEYS[7] plan    STRING  the compiled plan (shared by every run of the definition)
-- KEYS[8] the workflow's history index (ZSET, keys.runs_of)   KEYS[9] the counters (HASH, counters.py)
-- ARGV[1] the claim  ARGV[2] the claim's TTL (ms)  ARGV[3] the claim expected there ('' = none)
-- ARGV[4] run id  ARGV[5] created (ms)  ARGV[6] plan blob ('': written by an earlier call of the same
-- pipeline, only its TTL is renewed)  ARGV[7] plan TTL (s)  ARGV[8] event lines
-- ARGV[9] the run record: a JSON array of strings, field, value, field, value...
-- ARGV[10] the queued roots: a JSON array of strings, node index, node record, ...
-- ARGV[11] the active-runs gauge's field to count the run in ('': metrics off)
-- Reply: {0, holder} when another claim holds the key (nothing written but the plan's TTL); {1, plan
-- created 1|0}. The plan is written first either way: later calls of a pipeline may count on it.
local created = false
if ARGV[6] ~= '' then
  created = redis.call('SET', KEYS[7], ARGV[6], 'EX', ARGV[7], 'NX')
end
redis.call('EXPIRE', KEYS[7], ARGV[7])
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[3] then
  return {0, current}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], unpack(cjson.decode(ARGV[9])))
local nodes = cjson.decode(ARGV[10])
for first = 1, #nodes, 4000 do  -- in chunks: Lua's stack holds ~8000 values (a run of 10,000 roots)
  redis.call('HSET', KEYS[3], unpack(nodes, first, math.min(first + 3999, #nodes)))
end
redis.call('APPEND', KEYS[4], ARGV[8])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
redis.call('SADD', KEYS[6], ARGV[4])
redis.call('ZADD', KEYS[8], ARGV[5], ARGV[4])
if ARGV[11] ~= '' then
  redis.call('HINCRBY', KEYS[9], ARGV[11], 1)
end
return {1, created and 1 or 0}
