-- The pool scripts' binding of _pool.lua (prepended before it): KEYS are the pool's (keys.pool_keys
-- order), ARGV[1] and ARGV[2] its setting's slots and rate per second (0: none).
local K_POOL, K_HELD, K_WAITING = KEYS[1], KEYS[2], KEYS[3]
local SETTING_SLOTS, SETTING_RATE = ARGV[1], ARGV[2]
