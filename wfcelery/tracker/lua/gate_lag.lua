-- gate_lag: the worker processes whose gate lease is live and which have not applied gate change ARGV[1]
-- yet (a pause or cancel waits until there are none); lapsed leases are dropped on the way.
-- KEYS[1] the leases hash   ARGV[1] a gate change number
-- Returns {lease id, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = tonumber(ARGV[1])
local lagging = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local expires, applied = string.match(all[i + 1], '^(%d+):(%d+)$')
  if not expires or tonumber(expires) <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif tonumber(applied) < seq then
    table.insert(lagging, all[i])
  end
end
return lagging
