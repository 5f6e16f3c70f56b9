-- gate: write one run's entry in the gate table and tell every worker process (its message filter and its
-- local start gate) on the gate channel, numbered: the table's field '~seq' counts every change, and the
-- message carries the change's number, so a process knows which changes it has applied (gaps: it resyncs).
-- KEYS[1] the gate table   ARGV[1] run id   ARGV[2] the entry (records.GateEntry)   ARGV[3] the channel
-- Returns the change's number.
local seq = redis.call('HINCRBY', KEYS[1], '~seq', 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. seq)
return seq
