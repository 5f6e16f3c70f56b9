-- Create a run that holds a run key, in one atomic step (a single Redis, not a Cluster: the key's index
-- key and the run's keys live in different Cluster slots). What Tracker.create_run writes, plus the claim.
-- KEYS[1] runkey  STRING  the claim (records.RunKeyClaim)
-- KEYS[2] run     HASH    the run record (records.new_run)
-- KEYS[3] nodes   HASH    node records of the queued roots
-- KEYS[4] events  STRING  the run's event log (the roots' Q lines)
-- KEYS[5] index   ZSET    the run index
-- KEYS[6] live    SET     runs the reconciler watches
-- KEYS[7] plan    STRING  the compiled plan (shared by every run of the definition)
-- ARGV[1] the claim  ARGV[2] the claim's TTL (ms)  ARGV[3] the claim expected there ('' = none)
-- ARGV[4] run id  ARGV[5] created (ms)  ARGV[6] plan blob  ARGV[7] plan TTL (s)  ARGV[8] event lines
-- ARGV[9] n: the run record's fields and values follow in ARGV[10 .. 9 + n]; node index / record pairs after.
-- Reply: {0, holder} when another claim holds the key (nothing written); {1, plan created 1|0}.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[3] then
  return {0, current}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local created = redis.call('SET', KEYS[7], ARGV[6], 'EX', ARGV[7], 'NX')
redis.call('EXPIRE', KEYS[7], ARGV[7])
local n = tonumber(ARGV[9])
redis.call('HSET', KEYS[2], unpack(ARGV, 10, 9 + n))
if #ARGV > 9 + n then
  redis.call('HSET', KEYS[3], unpack(ARGV, 10 + n, #ARGV))
end
redis.call('APPEND', KEYS[4], ARGV[8])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
redis.call('SADD', KEYS[6], ARGV[4])
return {1, created and 1 or 0}
