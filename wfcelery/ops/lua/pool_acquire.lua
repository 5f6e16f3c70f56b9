-- pool_acquire: a node of the pool is about to be published (messaging/release.py via ops/pools.py):
-- take a slot and a token now if both are free and nobody waits before it.
-- KEYS: the pool's (_pool_keys.lua)   ARGV[1] the setting's slots (0: none)   ARGV[2] its rate per second
-- (0: none)   ARGV[3] the member ('<run id>|<slot>')
-- Returns 'held' (it holds a slot already: a re-publish), 'granted' (it holds one now: publish it) or
-- 'wait' (the caller parks the node, pool_park.lua, then lists it, pool_enqueue.lua). Writes nothing on
-- 'wait' and 'held'.
local member = ARGV[3]
if redis.call('HEXISTS', K_HELD, member) == 1 then
  return 'held'
end
if redis.call('ZCARD', K_WAITING) > 0 then
  return 'wait'  -- behind the nodes already waiting: FIFO
end
local slots, rate = limits()
if slots > 0 and redis.call('HLEN', K_HELD) >= slots then
  return 'wait'
end
if rate > 0 then
  local tokens = bucket(rate)
  if tokens < 1 then
    return 'wait'
  end
  store_tokens(tokens - 1)
end
redis.call('HSET', K_HELD, member, now_ms())
return 'granted'
