-- succeed.lua's binding of _pool.lua (prepended before it, after _common.lua): ARGV[9] is '' -- the node
-- is in no pool, or the tracker is a Redis Cluster, where the worker gives the slot back with
-- pool_release.lua -- or '<setting's slots>|<rate per second>|<most members to grant>|<member>', the
-- pool's keys at KEYS[8..10] (keys.pool_keys order).
local K_POOL, K_HELD, K_WAITING = KEYS[8], KEYS[9], KEYS[10]
local SETTING_SLOTS, SETTING_RATE, POOL_GRANT, POOL_MEMBER = string.match(ARGV[9], '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
