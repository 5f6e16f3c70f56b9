-- drop: delete every key of the run (cleanup, or a submit whose first messages could not be sent).
-- A run deleted while RUNNING or PAUSED leaves the active-runs gauge (counters.py) here.
-- No ARGV. Returns the run's status before, or false when there was no run.
local status = redis.call('HGET', K_RUN, 'status')
if status == 'RUNNING' or status == 'PAUSED' then
  count_run('a\t' .. workflow_label(), -1)
end
for i = 1, N_RUN_KEYS do
  redis.call('DEL', KEYS[i])
end
return status
