-- succeed: a node's task (or an instance's, slot '<node>:<i>') returned. Records the result, counts it into each child, and releases the
-- children whose parents have all succeeded (only while the run is RUNNING; resume re-plans the rest).
-- ARGV[1] node index   ARGV[2] epoch   ARGV[3] JSON result (not stored when 'null')
-- ARGV[4] the plan's trigger-rule SPEC as JSON (see _common.lua), or '' for a plan without rules/conditions
-- ARGV[5] node indexes whose results to return when a child is released ('i,j,...', or ''; Plan.fetch)
-- ARGV[6] inline continuation: the child this worker would run itself if it is the only one released, or ''
-- ARGV[7] this worker's hostname (for the inline child's start)
-- ARGV[8] ms since the body started: a start no call recorded yet is recorded with this report
-- ARGV[9] the node's pool step ('' or '<slots>|<rate>|<most to grant>|<member>', KEYS[8..10] the pool's
--   keys: _succeed_pool.lua): give the node's slot back in this step and grant what that frees
-- ARGV[10..] child index, number of its parents, child index, number of its parents, ... (plain plans)
-- Returns {finish, run epoch, params, {released child indexes...}, {index, result or false, ...}, inline,
--   started, pool}
--   (tracker.SucceedOutcome; the 5th: the results ARGV[5] asked for, only when children were released;
--   inline: the attempt number of the ARGV[6] child when this script also started it -- the start gate of
--   start.lua, in the same atomic step: the run is RUNNING and the child RUNNING on this worker -- else false)
--   started: '<attempt>:<ms waited>' when this report also recorded the node's start (ARGV[8]), else false.
--   pool: with a pool step (ARGV[9]), {slots given back (0 or 1), ms until the pool's next token or 0,
--   member granted...} (pool_release.lua's reply: the worker wakes and publishes the members), else false.
--   finish: false, or {final status, callback JSON or false, epoch} when this success ended the run.
--   params: the run's params JSON when children were released (they need it), else false.
--   A stale or duplicate report writes nothing and returns {false, 0, false, {}}; a report of a deleted
--   run (cleaned up or expired) writes nothing and returns {false, -1, false, {}}.
-- The worker builds the released children's arguments: a one-parent child gets this node's result; a
-- fan-in child's parents all stored theirs before it could be released: this script returns them (ARGV[5]).
local idx, epoch = ARGV[1], tonumber(ARGV[2])
prefetch('status', 'epoch', 'created', 'maxlen', 'total', 'params', 'policy', 'ml', 'mn', 'started', 'w:' .. ARGV[7])
if not run_field('status') then
  return {false, -1, false, {}}  -- the run was cleaned up (or expired): write nothing, or keys would outlive it
end
local n = get_node(idx)
if n.e ~= epoch or TERMINAL[n.s] then
  return {false, 0, false, {}}
end
local started = start_unseen(idx, n, ARGV[7], ARGV[8])
if ARGV[3] ~= 'null' then
  redis.call('HSET', K_RESULTS, idx, ARGV[3])  -- no field means null: most tasks of big runs return None
end
-- an instance of a mapped node: its node ends (and counts) with the map's last instance
local node, outcome = settle_slot(idx, n, 'S')
local status = run_field('status')
local run_epoch = tonumber(run_field('epoch'))
local released = {}
if status == 'RUNNING' and node and ARGV[4] ~= '' then
  local spec = cjson.decode(ARGV[4])
  if outcome == 'S' then
    cascade(spec, node, 'ok', run_epoch, released)
  else  -- the map's last instance succeeded, an earlier one failed (policy 'continue') or was revoked
    if const('policy') == 'fail_fast' then
      revoke_unless_survivor(spec, run_epoch, released)
    end
    cascade(spec, node, 'bad', run_epoch, released)
  end
elseif status == 'RUNNING' and node then
  release_counted(10, run_epoch, released)
end
local params = #released > 0 and (const('params') or '{}')  -- only when children were released
local inputs = {}
if #released > 0 and ARGV[5] ~= '' then
  local wanted = {}
  for i in string.gmatch(ARGV[5], '[^,]+') do
    table.insert(wanted, i)
  end
  local values = hmget_all(K_RESULTS, wanted)
  for i = 1, #wanted do
    table.insert(inputs, wanted[i])
    table.insert(inputs, values[i] or false)
  end
end
local inline = false
if ARGV[6] ~= '' and #released == 1 and released[1] == tonumber(ARGV[6]) and status == 'RUNNING' then
  local c = get_node(ARGV[6])
  count_wait(ARGV[6], c)
  c.s = 'R'
  c.a = c.a + 1
  c.st = tostring(rel_now())
  c.fi = ''
  c.w = worker_number(ARGV[7])
  put_node(ARGV[6], c)
  event(ARGV[6], 'R', c.e)
  inline = c.a
end
local pool = false
if POOL_MEMBER then  -- the node ended (an instance: its own slot): its slot goes back now
  local back = redis.call('HDEL', K_HELD, POOL_MEMBER)
  local granted, wait_ms = grant(tonumber(POOL_GRANT))
  pool = {back, wait_ms, unpack(granted)}
end
local finish = maybe_finish()
touch_if_finished(status)
return {finish, run_epoch, params, released, inputs, inline, started, pool}
