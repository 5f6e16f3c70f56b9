-- pool_wake: a node WAITING for its pool got a slot and a token (pool_enqueue / pool_release granted
-- it): WAITING -> QUEUED at its epoch; the caller publishes it.
-- ARGV[1] slot
-- Returns {verdict, epoch, node status code, plan digest, params JSON} (the last two when woken: what
-- publishing it needs, without reading the run record, which holds a field per waiting node): 'woken' (publish it), 'paused' (QUEUED now, not published: resume re-plans it,
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
return {'woken', n.e, 'Q', const('plan'), const('params') or '{}'}
