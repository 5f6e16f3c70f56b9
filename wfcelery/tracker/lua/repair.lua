-- repair: what the reconciler (wfcelery/reconciler.py) and a worker's message intake change when no hook
-- will report a node: its worker died, its message came back without it ever finishing, or the run's nodes
-- are all terminal but the run never ended. Every repair is fenced: it acts only on the node record the
-- caller read, so a late report, another reconciler or a second call changes nothing.
-- The run record counts deliveries that never finished per node, field 'l:<node index>'.
-- ARGV[1] operation:
--   'requeue'   ARGV[2] node index   ARGV[3] the node record as read (the fence)   ARGV[4] quarantine limit
--               a node RUNNING on a dead worker, or QUEUED past wfcelery_queued_timeout: QUEUED again
--               under a new epoch, so the original message, if it ever comes back, is stale
--   'received'  ARGV[2] node index   ARGV[3] the message's epoch   ARGV[4] quarantine limit
--               a redelivered message reached a worker; counted while its node has not started in that
--               epoch (a message that kills the worker before the body starts never reaches start.lua)
--   'finish'    end a RUNNING run whose nodes are all terminal
--   'void'      ARGV[2] the JSON error every node is revoked with
--               a run its submit never confirmed (create.lua: field 'unconfirmed', past its deadline) and
--               that never started: its client gave up and told its caller nothing was submitted, or lost
--               the confirmation. CANCELLED, with no callback; its nodes REVOKED with that error
-- Returns {action, epoch, deliveries, finish}  (tracker.RepairOutcome):
--   {'ignored', 0, 0, false}          nothing to do: the node moved, or the run is gone
--   {'requeue', epoch, n, false}      publish the node at this epoch (n deliveries never finished so far)
--   {'revoked', 0, n, false}          the run is paused or ended: the node is REVOKED (resume / retry plan it)
--   {'quarantine', epoch, n, false}   n deliveries never finished: the caller fails the node (fail.lua,
--                                     mode 'quarantined', at this epoch)
--   {'ok', epoch, n, false}           ('received') the delivery may go on
--   {'finished', 0, 0, finish}        ('finish') finish = {status, callback or false, epoch}, or false
--   {'voided', 0, 0, finish}          ('void') finish = {'CANCELLED', false, epoch}
local op = ARGV[1]
local status = run_field('status')
if not status then
  return {'ignored', 0, 0, false}
end

if op == 'finish' then
  local finish = maybe_finish()
  if finish then
    count_run('x\tfinished', 1)
  end
  return {'finished', 0, 0, finish}
end

if op == 'void' then
  local deadline = tonumber(run_field('unconfirmed'))
  local live = status == 'RUNNING' or status == 'QUEUED'
  if not deadline or run_field('started') or not live or now_ms() < deadline then
    return {'ignored', 0, 0, false}
  end
  redis.call('HDEL', K_RUN, 'unconfirmed')
  for idx = 0, tonumber(const('total')) - 1 do
    redis.call('HSET', K_ERRORS, idx, ARGV[2])
  end
  revoke_unstarted()
  local finish = finish_run('CANCELLED')
  -- no callback; its admission group (finish[7]) admits the next QUEUED run
  return {'voided', 0, 0, {finish[1], false, finish[3], false, 0, false, finish[7]}}
end

local idx, limit = ARGV[2], tonumber(ARGV[4])
local n = get_node(idx)

if op == 'received' then
  if n.s ~= 'Q' or n.e ~= tonumber(ARGV[3]) then
    return {'ok', n.e, 0, false}  -- started or settled: the start gate decides
  end
  local lost = redis.call('HINCRBY', K_RUN, 'l:' .. idx, 1)
  if lost >= limit then
    return {'quarantine', n.e, lost, false}
  end
  return {'ok', n.e, lost, false}
end

-- requeue (a QUEUED node too: its message may be lost; it is not counted as a delivery that died)
if redis.call('HGET', K_NODES, idx) ~= ARGV[3] or TERMINAL[n.s] then
  return {'ignored', 0, 0, false}
end
local lost = 0
if n.s == 'R' then
  lost = redis.call('HINCRBY', K_RUN, 'l:' .. idx, 1)
end
if status ~= 'RUNNING' then
  settle_slot(idx, n, 'X')
  touch_if_finished(status)
  count_run('x\trevoked', 1)
  return {'revoked', 0, lost, false}
end
if lost >= limit then
  return {'quarantine', n.e, lost, false}
end
local epoch = redis.call('HINCRBY', K_RUN, 'epoch', 1)
queue_node(idx, n, epoch)
count_run('x\trequeued', 1)
return {'requeue', epoch, lost, false}
