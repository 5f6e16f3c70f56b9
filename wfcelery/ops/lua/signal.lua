-- signal: run.signal(node, payload) -- a node waiting for a signal SUCCEEDS with the payload as its result,
-- and its children are released (_waiting.lua succeed_waiting). Atomic: of two signals, one wins.
-- ARGV[1] node index   ARGV[2] the payload, JSON (checked and size-limited by the caller)
-- ARGV[3] the plan's trigger-rule SPEC as JSON, or ''   ARGV[4..] plain plans: child index, its parents, ...
-- Returns {verdict, node status code, epoch, finish, run epoch, params, {released...}}:
--   'ok'           signalled: the rest is the success's outcome (outcomes.SucceedOutcome)
--   'gone'         no such run; 'finished' / 'paused' the run is (status code: its status's name)
--   'not_waiting'  the node is not WAITING: not reached yet, or done (its status code says which)
--   'not_signal'   the node waits, but not for a signal (a sleep, a child run)
--   Refusals write nothing.
local idx = ARGV[1]
local status = run_field('status')
if not status then
  return {'gone', '', 0}
end
if status ~= 'RUNNING' and status ~= 'PAUSED' then
  return {'finished', status, 0}
end
local n = get_node(idx)
if n.s ~= 'W' then
  return {'not_waiting', n.s, n.e}
end
local mark = get_mark(idx)
if not mark or mark.kind ~= 's' then
  return {'not_signal', n.s, n.e}
end
if status == 'PAUSED' then
  return {'paused', status, n.e}
end
local out = succeed_waiting(idx, n, ARGV[2], ARGV[3], 4)
return {'ok', 'S', n.e, out[1], out[2], out[3], out[4]}
