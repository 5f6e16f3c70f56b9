-- succeed: a node's task returned. Records the result, counts it into each child, and releases the
-- children whose parents have all succeeded (only while the run is RUNNING; resume re-plans the rest).
-- ARGV[1] node index   ARGV[2] epoch   ARGV[3] JSON result (not stored when 'null')
-- ARGV[4..] child index, number of its parents, child index, number of its parents, ... (from the plan)
-- Returns {finish, run epoch, params, {released child indexes...}}  (tracker.SucceedOutcome)
--   finish: false, or {final status, callback JSON or false, epoch} when this success ended the run.
--   params: the run's params JSON when children were released (they need it), else false.
--   A stale or duplicate report writes nothing and returns {false, 0, false, {}}; a report of a deleted
--   run (cleaned up or expired) writes nothing and returns {false, -1, false, {}}.
-- The worker builds the released children's arguments: a one-parent child gets this node's result; a
-- fan-in child's parents all stored theirs before it could be released (one HMGET by the worker).
local idx, epoch = ARGV[1], tonumber(ARGV[2])
if not run_field('status') then
  return {false, -1, false, {}}  -- the run was cleaned up (or expired): write nothing, or keys would outlive it
end
local n = get_node(idx)
if n.e ~= epoch or TERMINAL[n.s] then
  return {false, 0, false, {}}
end
settle(idx, n, 'S')
if ARGV[3] ~= 'null' then
  redis.call('HSET', K_RESULTS, idx, ARGV[3])  -- no field means null: most tasks of big runs return None
end
local status = run_field('status')
local run_epoch = tonumber(run_field('epoch'))
local released = {}
if status == 'RUNNING' then
  for i = 4, #ARGV, 2 do
    local child, parents = ARGV[i], tonumber(ARGV[i + 1])
    local ready = parents == 1 or redis.call('HINCRBY', K_DEPS, child, 1) >= parents
    if ready then
      local c = get_node(child)
      if c.s == 'P' then
        if parents > 1 then
          redis.call('HDEL', K_DEPS, child)
        end
        c.s = 'Q'
        c.e = run_epoch
        put_node(child, c)
        event(child, 'Q', run_epoch)
        table.insert(released, tonumber(child))
      end
    end
  end
end
local params = #released > 0 and (const('params') or '{}')  -- only when children were released
local finish = maybe_finish()
touch_if_finished(status)
return {finish, run_epoch, params, released}
