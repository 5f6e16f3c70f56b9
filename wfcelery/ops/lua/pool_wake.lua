-- pool_wake: a node WAITING for its pool got a slot and a token (pool_enqueue / pool_release granted
-- it): WAITING -> QUEUED at its epoch; the caller publishes it.
-- ARGV[1] slot   ARGV[2..] node indexes whose stored results to return when woken (its parents, when
-- the caller knows the run's plan already), or none
-- Returns {verdict, epoch, node status code, plan digest, params JSON, {result JSON or false...}} (the
-- last three when woken: what publishing it needs, without reading the run record, which holds a field
-- per waiting node): 'woken' (publish it), 'paused' (QUEUED now, not published: resume re-plans it,
-- the caller gives the slot back), 'stale' (not waiting for a pool any more: revoked, woken already; the
-- caller gives the slot back unless woken) or 'gone' (no run).
local slot = ARGV[1]
local status = run_field('status')
if not status then
  return {'gone', 0, ''}
end
local n = get_node(slot)
if n.s ~= 'W' or not redis.call('HGET', K_RUN, 'wp:' .. slot) or (status ~= 'RUNNING' and status ~= 'PAUSED') then
  return {'stale', n.e, n.s}
end
redis.call('HDEL', K_RUN, 'wp:' .. slot)
queue_node(slot, n, n.e)
if status ~= 'RUNNING' then
  return {'paused', n.e, 'Q'}
end
local results = {}
if #ARGV > 1 then
  local wanted = {}
  for i = 2, #ARGV do
    table.insert(wanted, ARGV[i])
  end
  local values = hmget_all(K_RESULTS, wanted)
  for i = 1, #wanted do
    results[i] = values[i] or false
  end
end
return {'woken', n.e, 'Q', const('plan'), const('params') or '{}', results}
