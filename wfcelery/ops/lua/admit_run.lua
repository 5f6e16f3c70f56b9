-- admit_run: a QUEUED run's turn came (ops/admission.py): it is RUNNING, its roots QUEUED (as create.lua
-- queues them at submit), in one atomic step; the caller then publishes the roots (a root with no task is
-- armed by that release).
-- ARGV[1..] the plan's root node indexes
-- Reply: {'admitted', epoch}, {'not_queued', status} (cancelled, failed at its deadline, started by
-- another caller already), or {'gone'}.
local status = run_field('status')
if not status then
  return {'gone'}
end
if status ~= 'QUEUED' then
  return {'not_queued', status}
end
local epoch = tonumber(run_field('epoch'))
redis.call('HSET', K_RUN, 'status', 'RUNNING')
event('run', 'RUNNING', epoch)
for i = 1, #ARGV do
  queue_node(ARGV[i], get_node(ARGV[i]), epoch)
end
return {'admitted', epoch}
