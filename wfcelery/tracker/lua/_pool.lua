-- A pool's slots and token bucket: the steps shared by the pool scripts (ops/lua/pool_acquire, pool_enqueue,
-- pool_release) and by succeed.lua, which gives a pooled node's slot back in the same atomic step as its
-- success when the tracker is one Redis server. Prepended when they are loaded (BURST_SECONDS first, from
-- definition/pools.py), after a binding that names the pool's keys and its setting's limits (and after a
-- now_ms(), _clock.lua):
--   K_POOL     HASH  'slots' and 'rate' (starts per second) set at run time (engine.set_pool; when absent
--                    SETTING_SLOTS and SETTING_RATE apply; '0': no bound), 'rate_text', 'tokens' and 'at'
--                    (ms) the token bucket, 'seq' the waiting order's counter
--   K_HELD     HASH  member -> ms it took its slot: the nodes published or running in the pool
--   K_WAITING  ZSET  member -> release order (-priority * 1e12 + seq: priority first, then FIFO)
-- A pool's keys (keys.pool_keys order) share the pool's hash tag and never a run's: on a Redis Cluster a
-- run's script cannot touch them (succeed.lua then gets no pool step, and the worker calls pool_release). A member is '<run id>|<slot>' (a node index, or '<node>:<i>' for an instance): one per
-- node, whatever its epoch, so a node re-published by the reconciler or a resume keeps the slot it holds.
-- The pool's bounds: slots (0: none) and starts per second (0: none).
local function limits()
  local v = redis.call('HMGET', K_POOL, 'slots', 'rate')
  return tonumber(v[1] or SETTING_SLOTS) or 0, tonumber(v[2] or SETTING_RATE) or 0
end

-- The token bucket refilled to now: tokens (a float), its capacity (the burst, at least 1).
local function bucket(rate)
  local cap = math.max(1, math.floor(rate * BURST_SECONDS))
  local v = redis.call('HMGET', K_POOL, 'tokens', 'at')
  local tokens, at = tonumber(v[1]), tonumber(v[2])
  if not tokens or not at then
    return cap, cap
  end
  return math.min(cap, tokens + math.max(0, now_ms() - at) * rate / 1000), cap
end

local function store_tokens(tokens)
  redis.call('HSET', K_POOL, 'tokens', tostring(tokens), 'at', now_ms())
end

-- Hand free slots and tokens to the waiting members, first in order, at most 'limit'. Returns the
-- members granted (they hold a slot now: the caller wakes and publishes them) and, when members still
-- wait for a token, the ms until the next one (else 0: a release wakes them).
local function grant(limit)
  local slots, rate = limits()
  local granted = {}
  local tokens = 0
  if rate > 0 then
    tokens = bucket(rate)
  end
  local held = redis.call('HLEN', K_HELD)
  local wait_ms = 0
  while #granted < limit do
    if slots > 0 and held >= slots then
      break
    end
    local first = redis.call('ZRANGE', K_WAITING, 0, 0)
    if #first == 0 then
      break
    end
    if rate > 0 and tokens < 1 then
      wait_ms = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
      break
    end
    redis.call('ZREM', K_WAITING, first[1])
    if redis.call('HSETNX', K_HELD, first[1], now_ms()) == 1 then
      held = held + 1
    end
    tokens = tokens - 1
    table.insert(granted, first[1])
  end
  if rate > 0 and #granted > 0 then
    store_tokens(tokens)
  end
  return granted, wait_ms
end
