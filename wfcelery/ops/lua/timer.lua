-- timer: a timer of the timers ZSET came due (ops/timers.py, the elected timer loop): a sleep SUCCEEDS
-- (result null, children released), a wait's timeout is reported to the caller, which fails the node
-- (fail.lua: "no signal within ..."; the failure policy applies).
-- ARGV[1] node index   ARGV[2] epoch   ARGV[3] the timer's due time (ms): the fence, the mark must name it
-- ARGV[4] the plan's trigger-rule SPEC as JSON, or ''   ARGV[5..] plain plans: child index, its parents, ...
-- Returns {verdict, finish, run epoch, params, {released...}}:
--   'slept'    the sleep succeeded: the rest is its outcome (outcomes.SucceedOutcome)
--   'timeout'  a wait's deadline passed while it waits: the caller fails it
--   'later'    the run is paused: the timer waits for the resume (the caller looks again later)
--   'stale'    the node no longer waits on this timer (signalled, revoked, armed again); 'gone' no run
local idx, epoch = ARGV[1], tonumber(ARGV[2])
local status = run_field('status')
if not status then
  return {'gone'}
end
local n = get_node(idx)
local mark = get_mark(idx)
if n.s ~= 'W' or n.e ~= epoch or not mark or mark.at ~= ARGV[3] then
  return {'stale'}
end
if status == 'PAUSED' then
  return {'later'}
end
if mark.kind == 's' then
  return {'timeout'}
end
local out = succeed_waiting(idx, n, 'null', ARGV[4], 5)
return {'slept', out[1], out[2], out[3], out[4]}
