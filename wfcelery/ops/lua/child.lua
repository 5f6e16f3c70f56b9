-- child: a sub-workflow node's child run SUCCEEDED: the node SUCCEEDS with the child's results (a dict by
-- node name) and its children are released (_waiting.lua succeed_waiting; in a paused run the success is
-- recorded, as a running node's is, and resume releases the children). A failed child fails the node
-- through fail.lua instead (ops/subruns.py).
-- ARGV[1] node index   ARGV[2] the child run's id (the fence: the node must wait on this child)
-- ARGV[3] the result, JSON   ARGV[4] the plan's trigger-rule SPEC as JSON, or ''
-- ARGV[5..] plain plans: child index, its parents, ...
-- Returns {verdict, finish, run epoch, params, {released...}}: 'ok' (the success's outcome,
-- outcomes.SucceedOutcome), 'stale' (the node does not wait on this child) or 'gone' (no run).
local idx = ARGV[1]
local status = run_field('status')
if not status then
  return {'gone'}
end
local n = get_node(idx)
local mark = get_mark(idx)
if n.s ~= 'W' or not mark or mark.kind ~= 'r' or mark.run ~= ARGV[2] then
  return {'stale'}
end
local out = succeed_waiting(idx, n, ARGV[3], ARGV[4], 5)
return {'ok', out[1], out[2], out[3], out[4]}
