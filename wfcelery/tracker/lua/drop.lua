-- drop: delete every key of the run (cleanup, or a submit whose first messages could not be sent).
-- A run deleted while RUNNING or PAUSED leaves the active-runs gauge (counters.py) here.
-- No ARGV. Returns the run's status before, or false when there was no run.
local status = redis.call('HGET', K_RUN, 'status')
if K_METRICS and (status == 'RUNNING' or status == 'PAUSED') then
  local field = 'a\t' .. workflow_label()
  if redis.call('HINCRBY', K_METRICS, field, -1) == 0 then
    redis.call('HDEL', K_METRICS, field)  -- a submit whose publish failed leaves nothing behind
  end
end
for i = 1, N_RUN_KEYS do
  redis.call('DEL', KEYS[i])
end
return status
