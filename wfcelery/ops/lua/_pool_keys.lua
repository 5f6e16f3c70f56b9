-- The pool scripts' binding of _pool.lua (prepended before it): KEYS are the pool's (keys.pool_keys
-- order), ARGV[1] and ARGV[2] its setting's slots and rate per second (0: none).
local K_POOL, K_HELD, K_WAITING = KEYS[1], KEYS[2], KEYS[3]
local SETTING_SLOTS, SETTING_RATE = ARGV[1], ARGV[2]

-- Scripts are atomic: read the clock once per call.
local NOW_MS = nil
local function now_ms()
  if not NOW_MS then
    local t = redis.call('TIME')
    NOW_MS = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return NOW_MS
end
