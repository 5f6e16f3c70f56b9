-- pool_enqueue: list a parked node (WAITING for the pool: pool_park.lua) among the pool's waiting
-- members, then grant what is free (a slot may have been released between the acquire and now).
-- KEYS: the pool's (_pool_keys.lua)   ARGV[1] the setting's slots   ARGV[2] its rate per second
-- ARGV[3] the member   ARGV[4] its priority (higher first; 0 when none)   ARGV[5] most members to grant
-- Returns {ms until the next token or 0, granted member...} (the caller wakes and publishes those).
local member = ARGV[3]
local holds = redis.call('HEXISTS', K_HELD, member) == 1  -- granted before (a repair): wake it
if not holds then
  local seq = redis.call('HINCRBY', K_POOL, 'seq', 1)
  redis.call('ZADD', K_WAITING, 'NX', -tonumber(ARGV[4]) * 1e12 + seq, member)
end
local granted, wait_ms = grant(tonumber(ARGV[5]))
if holds then
  table.insert(granted, member)
end
return {wait_ms, unpack(granted)}
