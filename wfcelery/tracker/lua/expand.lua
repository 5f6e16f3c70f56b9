-- expand: a released mapped node's source list has 'count' elements: queue one instance per element
-- (slots '<node>:0' .. '<node>:<count-1>', at the node's epoch) and mark the node RUNNING until the last
-- instance ends (_common.lua settle_slot). An empty list: the node SUCCEEDS at once with [] and its
-- children are decided.
-- ARGV[1] node index   ARGV[2] epoch it was released at   ARGV[3] number of elements
-- ARGV[4] the plan's trigger-rule SPEC as JSON (see _common.lua)
-- Returns {finish, run epoch, params, {released node indexes...}}  (tracker.SucceedOutcome, as succeed.lua;
--   released is empty unless the list was empty), or {false, -2, false, {}} when stale / not running (a
--   paused run keeps the node QUEUED: resume publishes it again).
local idx, epoch, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local status = run_field('status')
if status ~= 'RUNNING' then
  return {false, -2, false, {}}
end
local n = get_node(idx)
if n.e ~= epoch or n.s ~= 'Q' then
  return {false, -2, false, {}}
end
local released = {}
n.s = 'R'
n.st = tostring(rel_now())
event(idx, 'R', epoch)
if count == 0 then
  redis.call('HSET', K_RESULTS, idx, '[]')
  settle(idx, n, 'S')
  cascade(cjson.decode(ARGV[4]), tonumber(idx), 'ok', epoch, released)
else
  put_node(idx, n)
  redis.call('HSET', K_RUN, 'm:' .. idx, count)
  redis.call('HDEL', K_RUN, 'md:' .. idx, 'mF:' .. idx, 'mX:' .. idx)
  local record = 'Q|' .. epoch .. '|0||' .. rel_now() .. '|'  -- QUEUED now (queue_node)
  for first = 0, count - 1, 1000 do
    local args = {}
    for i = first, math.min(first + 999, count - 1) do
      table.insert(args, idx .. ':' .. i)
      table.insert(args, record)
      event(idx .. ':' .. i, 'Q', epoch)
    end
    redis.call('HSET', K_NODES, unpack(args))
  end
end
local params = #released > 0 and (const('params') or '{}')
local finish = maybe_finish()
return {finish, tonumber(run_field('epoch')), params, released}
