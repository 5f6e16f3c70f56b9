-- replan: resume a PAUSED run, or retry a FAILED / CANCELLED one, under a new epoch.
-- Every node that has not succeeded and is not running is planned again under the new epoch, and so is every
-- node downstream of one that succeeded (a trigger-rule handler such as all_done that ran after the failure,
-- and what used its result): its inputs change. Each is queued now if all its parents succeeded (and are not
-- planned again), else pending with its dependency counter recomputed from its parents' states. A retry
-- gives each node it plans again its full retries (the node record's base, _common.lua get_node); a resume
-- goes on with the budget the node had. A WAITING node (a wait, a sleep, a child run: ops/lua/arm.lua)
-- keeps waiting, as a running one keeps running: its timer and its child run stay as they are.
-- Atomic, so a node that finishes meanwhile is counted exactly once.
-- ARGV[1] operation: 'resume' | 'retry'
-- ARGV[2] JSON [[node index, [parent indexes]], ...] for every node of the plan
-- ARGV[4] 'canvas' to record the nodes planned again in run field 'r:<epoch>' (segments.py), else ''
-- ARGV[3] the plan's trigger-rule SPEC as JSON (see _common.lua), or '': a node whose parents all succeeded
--         is then queued only if its rule says run (all_failed / one_failed are skipped, and the skip counted)
-- A mapped node that expanded keeps its instances: those that did not succeed and are not running are
-- queued again (the node is RUNNING until they end); the others keep their results.
-- Returns {status before, epoch, finish, {queued node indexes...}, {queued instance slots...}}
-- (tracker.ReplanOutcome),
-- {status before} when refused / a no-op, or {false} when the run does not exist.
--   finish: {status, callback JSON or false, epoch} when nothing is left to run (every node finished while
--   the run was paused or cancelled), else false.
local op = ARGV[1]
local status = run_field('status')
if not status then
  return {false}
end
if op == 'resume' and status ~= 'PAUSED' then
  return {status}
end
if op == 'retry' and status ~= 'FAILED' and status ~= 'CANCELLED' then
  return {status}
end
local retry = op == 'retry'

local function requeue_instances(idx, n, count, epoch, out)
  for i = 0, count - 1 do
    local slot = idx .. ':' .. i
    local inst = get_node(slot)
    if inst.s ~= 'S' and inst.s ~= 'R' then
      if TERMINAL[inst.s] then
        redis.call('HINCRBY', K_RUN, 'md:' .. idx, -1)
        redis.call('HINCRBY', K_RUN, 'm' .. inst.s .. ':' .. idx, -1)
      end
      if retry then
        inst.b = inst.a
      end
      queue_node(slot, inst, epoch)
      table.insert(out, slot)
    end
  end
  if TERMINAL[n.s] then
    unsettle(n.s)
    n.s, n.fi = 'R', ''
    event(idx, 'R', epoch)
  end
  n.e = epoch
  put_node(idx, n)
end

-- A mapped node that succeeded runs again from scratch: its map source may give another list.
local function forget_instances(idx)
  local count = tonumber(run_field('m:' .. idx) or 0)
  for first = 0, count - 1, 1000 do
    local slots, history = {}, {}
    for i = first, math.min(first + 999, count - 1) do
      table.insert(slots, idx .. ':' .. i)
      table.insert(history, 'h:' .. idx .. ':' .. i)
    end
    redis.call('HDEL', K_NODES, unpack(slots))
    redis.call('HDEL', K_RESULTS, unpack(slots))
    redis.call('HDEL', K_ERRORS, unpack(slots))
    redis.call('HDEL', K_ERRORS, unpack(history))
  end
  redis.call('HDEL', K_RUN, 'm:' .. idx, 'md:' .. idx, 'mF:' .. idx, 'mX:' .. idx)
end

local epoch = redis.call('HINCRBY', K_RUN, 'epoch', 1)
redis.call('HSET', K_RUN, 'status', 'RUNNING')
redis.call('HDEL', K_RUN, 'finished', 'paused_at')
redis.call('DEL', K_DEPS)
for i = 1, N_RUN_KEYS do
  redis.call('PERSIST', KEYS[i])
end
if op == 'retry' then
  count_run('a\t' .. workflow_label(), 1)  -- an ended run is active again
end
event('run', 'RUNNING', epoch)
local queued, instances, again = {}, {}, {}
local spec = cjson.decode(ARGV[2])
local states, children = {}, {}
for _, entry in ipairs(spec) do
  states[entry[1]] = get_node(entry[1])
  children[entry[1]] = {}
end
for _, entry in ipairs(spec) do
  for _, p in ipairs(entry[2]) do
    table.insert(children[p], entry[1])
  end
end
-- what runs again: the nodes that did not succeed and are not running, and the succeeded ones downstream
local rerun, stack = {}, {}
for _, entry in ipairs(spec) do
  local n = states[entry[1]]
  if n.s ~= 'S' and n.s ~= 'W' and (n.s ~= 'R' or run_field('m:' .. entry[1])) then
    rerun[entry[1]] = true
    table.insert(stack, entry[1])
  end
end
while #stack > 0 do
  for _, child in ipairs(children[table.remove(stack)]) do
    if not rerun[child] and states[child].s == 'S' then
      rerun[child] = true
      table.insert(stack, child)
    end
  end
end
for _, entry in ipairs(spec) do
  local idx, parents = entry[1], entry[2]
  local n = states[idx]
  local mapped = run_field('m:' .. idx)
  if mapped and n.s ~= 'S' then
    requeue_instances(idx, n, tonumber(mapped), epoch, instances)
  elseif rerun[idx] then
    if n.s == 'S' then
      redis.call('HDEL', K_RESULTS, idx)  -- it runs again: its old result is not its result
      if mapped then
        forget_instances(idx)
      end
    end
    local ok = 0
    for _, p in ipairs(parents) do
      if states[p].s == 'S' and not rerun[p] then
        ok = ok + 1
      end
    end
    unsettle(n.s)
    n.fi = ''
    if retry then
      n.b = n.a
    end
    if ok == #parents then
      queue_node(idx, n, epoch)
      table.insert(queued, idx)
    else
      n.s = 'P'
      n.e = epoch  -- a message of an older epoch (a canvas continuation) is stale for it now
      if #parents > 1 and ok > 0 then
        redis.call('HSET', K_DEPS, idx, ok)
      end
      put_node(idx, n)
    end
    table.insert(again, idx)
  end
end
if ARGV[4] == 'canvas' then
  -- the canvas executor cuts exactly these nodes into segments in this epoch (records.remaining_field)
  redis.call('HSET', K_RUN, 'r:' .. epoch, table.concat(again, ','))
end
if ARGV[3] ~= '' then
  local rules, released, kept = cjson.decode(ARGV[3]), {}, {}
  for _, idx in ipairs(queued) do
    local total = rules.p[idx + 1]
    if decide(string.sub(rules.r, idx + 1, idx + 1), total, total, 0, 0) == 'run' then
      table.insert(kept, idx)
    else
      local n = get_node(idx)
      redis.call('HSET', K_ERRORS, idx, SKIPPED_BY.skip)
      settle(idx, n, 'K')
      cascade(rules, idx, 'skip', epoch, released)
    end
  end
  for _, idx in ipairs(released) do
    table.insert(kept, idx)
  end
  queued = kept
end
return {status, epoch, maybe_finish(), queued, instances}
