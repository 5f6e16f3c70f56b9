-- halt: pause or cancel a run -- stop its nodes that have not started (resume and retry: replan.lua).
-- ARGV[1] operation: 'pause' | 'cancel'
-- Returns {status before, status after, finish, epoch, queued, running}  (tracker.HaltOutcome),
-- or {false} when the run does not exist.
--   queued  = {idx, epoch, ...} of the nodes with a message out that has not started (to revoke)
--   running = {idx, epoch, ...} of the running nodes (cancel(terminate=True) terminates them)
--   finish  = false or {status, callback JSON or false, epoch} (cancel ends the run)
--   A no-op (already in the target status, or finished) returns status before == status after.
local op = ARGV[1]
local status = run_field('status')
if not status then
  return {false}
end
local target = op == 'pause' and 'PAUSED' or 'CANCELLED'
if status == target or (status ~= 'RUNNING' and status ~= 'PAUSED') then
  return {status, status, false, tonumber(run_field('epoch')), {}, {}}
end
local queued, running = {}, {}
local finish = false
local total = tonumber(const('total'))
if op == 'pause' then
  redis.call('HSET', K_RUN, 'status', 'PAUSED', 'paused_at', now_ms())
  event('run', 'PAUSED', run_field('epoch'))
  for idx = 0, total - 1 do
    local n = get_node(idx)
    if n.s == 'Q' or n.s == 'Y' then
      table.insert(queued, idx)
      table.insert(queued, n.e)
    elseif n.s == 'R' then
      table.insert(running, idx)
      table.insert(running, n.e)
    end
  end
else
  for idx = 0, total - 1 do
    local n = get_node(idx)
    if n.s == 'R' then
      table.insert(running, idx)
      table.insert(running, n.e)
    end
  end
  queued = revoke_unstarted()
  finish = finish_run('CANCELLED')
end
return {status, target, finish, tonumber(run_field('epoch')), queued, running}
