-- gate_lease: take, renew or drop a worker process's gate lease, recording the last gate change it applied.
-- KEYS[1] the leases hash (lease id -> '<expires, server ms>:<applied change number>')
-- ARGV[1] lease id   ARGV[2] lease, ms (0: drop the lease)   ARGV[3] the last change number applied
-- Returns Redis's clock, ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ttl <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], (now + ttl) .. ':' .. ARGV[3])
end
return now
