-- arm: a released node with no task starts waiting: QUEUED -> WAITING, with its wait mark (_waiting.lua).
-- Called by the release path (messaging/release.py -> ops/arming.py) right after the node was released.
-- ARGV[1] node index   ARGV[2] the epoch it was released at
-- ARGV[3] what it waits for: 's' a signal, 't' a time, 'r' a child run
-- ARGV[4] 's': the timeout, 't': when the sleep ends: 'in:<ms>' from now (when the node is reached),
--         'at:<ms>' (Redis clock), or '' (a wait with no timeout, a child run)
-- ARGV[5] 'r': the id for a new child run (a node that had a child run keeps it: a retry of the parent
--         retries that child), else ''
-- Returns {verdict, mark}:
--   {'armed', mark}    WAITING now; mark as written ('r': with the child run id to start, or to resume,
--                      retry or read when it is the node's earlier child)
--   {'waiting', mark}  already WAITING at this epoch (a release delivered again): its mark
--   {'paused', ''}     the run is paused (or ended): the node stays QUEUED, resume re-plans it
--   {'stale', ''}      the node moved on (another epoch, settled); {'gone', ''} the run was deleted
local idx, epoch, kind = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local status = run_field('status')
if not status then
  return {'gone', ''}
end
local n = get_node(idx)
if n.e ~= epoch then
  return {'stale', ''}
end
if n.s == 'W' then
  return {'waiting', get_mark(idx).raw}
end
if n.s ~= 'Q' then
  return {'stale', ''}
end
if status ~= 'RUNNING' then
  return {'paused', ''}
end
local run = ''
if kind == 'r' then
  local earlier = get_mark(idx)
  run = (earlier and earlier.kind == 'r' and earlier.run ~= '') and earlier.run or ARGV[5]
end
local at = ''
local how, ms = string.match(ARGV[4], '^(%a+):(%d+)$')
if how == 'in' then
  at = tostring(now_ms() + tonumber(ms))
elseif how == 'at' then
  at = ms
end
local mark = kind .. '|' .. at .. '|' .. run
redis.call('HSET', K_RUN, 'wt:' .. idx, mark)
n.s = 'W'
n.st = tostring(rel_now())
n.fi = ''
put_node(idx, n)
event(idx, 'W', epoch)
return {'armed', mark}
