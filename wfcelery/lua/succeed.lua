-- succeed: a node's task returned. Records the result, counts it into each child, and releases the
-- children whose parents have all succeeded (only while the run is RUNNING; resume re-plans the rest).
-- ARGV[1] node index   ARGV[2] epoch   ARGV[3] JSON result (not stored when 'null')
-- ARGV[4] JSON [[child index, [parent indexes in parent order]], ...] from the compiled plan
-- Returns {finish, epoch, params, {child, result1, result2, ...}, ...}
--   finish: false, or {final status, callback JSON or false} when this success ended the run.
local idx, epoch = ARGV[1], tonumber(ARGV[2])
if not run_field('status') then
  return {false}  -- the run was cleaned up (or expired): write nothing, or keys would outlive it
end
local n = get_node(idx)
if n.e ~= epoch or TERMINAL[n.s] then
  return {false}
end
settle(idx, n, 'S')
if ARGV[3] ~= 'null' then
  redis.call('HSET', K_RESULTS, idx, ARGV[3])  -- no field means null: most tasks of big runs return None
end
local status = run_field('status')
local run_epoch = tonumber(run_field('epoch'))
local out = {false, run_epoch, const('params') or '{}'}
if status == 'RUNNING' then
  for _, spec in ipairs(cjson.decode(ARGV[4])) do
    local child, parents = spec[1], spec[2]
    local ready = #parents == 1
    if not ready then
      ready = redis.call('HINCRBY', K_DEPS, child, 1) >= #parents
    end
    local c = get_node(child)
    if ready and c.s == 'P' then
      redis.call('HDEL', K_DEPS, child)
      c.s = 'Q'
      c.e = run_epoch
      put_node(child, c)
      event(child, 'Q', run_epoch)
      local released = {child}
      for first = 1, #parents, 1000 do  -- unpack() is limited to a few thousand values
        local values = redis.call('HMGET', K_RESULTS, unpack(parents, first, math.min(first + 999, #parents)))
        for i = 1, #values do
          table.insert(released, values[i] or 'null')
        end
      end
      table.insert(out, released)
    end
  end
end
out[1] = maybe_finish()
touch_if_finished(status)
return out
