-- halt: pause or cancel a run -- stop its nodes that have not started (resume and retry: replan.lua) --, or
-- fail it at its deadline (ops/deadlines.py: as cancel, but FAILED, with the run's error "deadline exceeded").
-- ARGV[1] operation: 'pause' | 'cancel' | 'deadline'
-- ARGV[2] ('deadline') the run's error, JSON
-- ARGV[3] the run's epoch as the caller read it, or '': a run at another epoch (resumed or retried since
--         the caller decided) is left as it is (a parent's end cancelling its idle children, ops/subruns.py)
-- Returns {status before, status after, finish, epoch, queued, running}  (tracker.HaltOutcome),
-- or {false} when the run does not exist.
--   queued  = {idx, epoch, ...} of the nodes with a message out that has not started (to revoke)
--   running = {idx, epoch, ...} of the running nodes (cancel(terminate=True) terminates them)
--   finish  = false or {status, callback JSON or false, epoch, ...} (cancel and a deadline end the run)
--   A no-op (already in the target status, finished, or at another epoch than ARGV[3]) returns status
--   before == status after.
-- A QUEUED run (waiting for max_active_runs: none of its nodes has a message) may be cancelled or failed
-- by its deadline; pausing it is a no-op. A deadline is fired once: field 'dlx' marks it fired (a retry
-- of the run then runs without it), and a 'deadline' call on a run whose deadline is not past is a no-op.
local op = ARGV[1]
local status = run_field('status')
if not status then
  return {false}
end
local targets = {pause = 'PAUSED', cancel = 'CANCELLED', deadline = 'FAILED'}
local target = targets[op]
local live = status == 'RUNNING' or status == 'PAUSED' or (status == 'QUEUED' and op ~= 'pause')
local due = run_field('dl')
if op == 'deadline' and (not due or run_field('dlx') or now_ms() < tonumber(due)) then
  live = false
end
if ARGV[3] ~= '' and tonumber(run_field('epoch')) ~= tonumber(ARGV[3]) then
  live = false
end
if status == target or not live then
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
  if op == 'deadline' then
    redis.call('HSET', K_RUN, 'dlx', 1, 'err', ARGV[2])
  end
  finish = finish_run(target)
end
return {status, target, finish, tonumber(run_field('epoch')), queued, running}
