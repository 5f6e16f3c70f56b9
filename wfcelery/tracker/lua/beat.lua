-- beat: a worker's heartbeat (wfcelery/worker/heartbeat.py), stamped with Redis's clock, so that the
-- reconciler judges its age on the same clock whoever holds the lease and however long it has watched.
-- KEYS[1] worker:<hostname>  STRING  the heartbeat: records.WorkerBeat, "<boot ms> @<beat ms>[,<task id>...]"
-- ARGV[1] the worker's boot time in ms ('' on its first beat: this beat's time)
-- ARGV[2] the task ids its pool runs now, comma-separated ('' for none)
-- ARGV[3] ms the key lives
-- Returns this beat's time (ms, Redis clock).
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local boot = ARGV[1]
if boot == '' then
  boot = now
end
local value = boot .. ' @' .. now
if ARGV[2] ~= '' then
  value = value .. ',' .. ARGV[2]
end
redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
return tonumber(now)
