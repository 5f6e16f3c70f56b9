-- pool_park: a released task node (or instance) of a pool whose slots or rate are used up waits:
-- QUEUED -> WAITING, run-record field 'wp:<slot>' = the pool (records.POOL_WAIT_PREFIX). No message is
-- out for it: it holds no worker slot and no prefetch slot. Called before the node is listed in the pool's
-- waiting set (pool_enqueue.lua): a crash between the two leaves it WAITING unlisted, which the
-- reconciler lists (ops/pools.py sweep_pool_waits).
-- ARGV[1] slot   ARGV[2] the epoch it was released at   ARGV[3] the pool
-- Returns 'parked', 'stale' (not QUEUED at that epoch), 'paused' (the run is not RUNNING: the node stays
-- QUEUED, resume re-plans it) or 'gone' (no run).
local slot, epoch = ARGV[1], tonumber(ARGV[2])
local status = run_field('status')
if not status then
  return 'gone'
end
local n = get_node(slot)
if n.e ~= epoch or n.s ~= 'Q' then
  return 'stale'
end
if status ~= 'RUNNING' then
  return 'paused'
end
redis.call('HSET', K_RUN, 'wp:' .. slot, ARGV[3])
n.s = 'W'
n.fi = ''
put_node(slot, n)
event(slot, 'W', epoch)
return 'parked'
