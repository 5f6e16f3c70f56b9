-- control: pause, cancel (and the status half of resume/retry, see replan.lua).
-- ARGV[1] operation: 'pause' | 'cancel'
-- Returns {status before, status after, finish, epoch, out...}
--   pause:  out = idx, epoch pairs of queued nodes (to revoke), then 'R', idx... of running nodes
--   cancel: out = idx, epoch pairs of queued nodes, then 'R', idx, epoch pairs of running nodes
--   finish = false or {status, callback} (cancel ends the run)
local op = ARGV[1]
local status = run_field('status')
if not status then
  return {false}
end
local target = op == 'pause' and 'PAUSED' or 'CANCELLED'
if status == target or (status ~= 'RUNNING' and status ~= 'PAUSED') then
  return {status, status, false, tonumber(run_field('epoch'))}
end
local out = {status, target, false, tonumber(run_field('epoch'))}
local running = {}
local total = tonumber(const('total'))
if op == 'pause' then
  redis.call('HSET', K_RUN, 'status', 'PAUSED', 'paused_at', now_ms())
  event('run', 'PAUSED', run_field('epoch'))
  for idx = 0, total - 1 do
    local n = get_node(idx)
    if n.s == 'Q' or n.s == 'Y' then
      table.insert(out, idx)
      table.insert(out, n.e)
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
  for _, v in ipairs(revoke_unstarted()) do
    table.insert(out, v)
  end
  out[3] = finish_run('CANCELLED')
end
table.insert(out, 'R')
for _, v in ipairs(running) do
  table.insert(out, v)
end
return out
