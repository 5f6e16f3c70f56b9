-- pool_release: give back the slots of members whose node ended (or no longer holds one: paused,
-- cancelled, cleaned up, a dead worker's node repaired and ended), then grant what is free to the
-- waiting members. With no member: grant only (the pool loop's tick for rates, a resize). A success on one
-- Redis server gives its slot back in succeed.lua instead (tracker/lua/_succeed_pool.lua).
-- KEYS: the pool's (_pool_keys.lua)   ARGV[1] the setting's slots   ARGV[2] its rate per second
-- ARGV[3] most members to grant   ARGV[4..] members to release
-- Returns {slots released, ms until the next token or 0, granted member...}.
local released = 0
for i = 4, #ARGV do
  released = released + redis.call('HDEL', K_HELD, ARGV[i])
end
local granted, wait_ms = grant(tonumber(ARGV[3]))
return {released, wait_ms, unpack(granted)}
