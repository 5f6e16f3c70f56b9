-- skip: a released node's condition ('when') was false, so it does not run: SKIPPED, and its children are
-- decided by their trigger rules (only while the run is RUNNING; resume re-plans the rest).
-- ARGV[1] node index   ARGV[2] epoch it was released at   ARGV[3] JSON {type, message} (why it was skipped)
-- ARGV[4] the plan's trigger-rule SPEC as JSON (see _common.lua)
-- Returns {finish, run epoch, params, {released node indexes...}}  (tracker.SucceedOutcome, as succeed.lua)
--   A stale report (the node is not QUEUED at that epoch, or the run is gone) writes nothing.
local idx, epoch = ARGV[1], tonumber(ARGV[2])
local status = run_field('status')
if not status then
  return {false, 0, false, {}}
end
local n = get_node(idx)
if n.e ~= epoch or n.s ~= 'Q' then
  return {false, 0, false, {}}
end
redis.call('HSET', K_ERRORS, idx, ARGV[3])
settle(idx, n, 'K')
local run_epoch = tonumber(run_field('epoch'))
local released = {}
if status == 'RUNNING' then
  cascade(cjson.decode(ARGV[4]), tonumber(idx), 'skip', run_epoch, released)
end
local params = #released > 0 and (const('params') or '{}')
local finish = maybe_finish()
touch_if_finished(status)
return {finish, run_epoch, params, released}
