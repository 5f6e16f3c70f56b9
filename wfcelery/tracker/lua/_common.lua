-- Shared by every per-run script (prepended when scripts are loaded). Every script gets the run's keys,
-- in keys.RUN_KEYS order. What each key holds -- every run-record field and value format -- is described
-- once, in the README's key layout ("The tracker: states, keys, memory"); on the Python side only
-- wfcelery/records.py encodes and decodes it.
-- KEYS[1] run      HASH   the run record (records.new_run / RunRecord)
-- KEYS[2] nodes    HASH   node records (records.NodeRecord; get_node / put_node below)
-- KEYS[3] deps     HASH   fan-in counts of the nodes still waiting
-- KEYS[4] results  HASH   JSON results
-- KEYS[5] errors   HASH   JSON errors and skip reasons
-- KEYS[6] events   STRING the capped transition log (records.Event; event() below). A string, not a STREAM:
--                         a small stream costs ~4.7 KB whatever its length, which would triple the
--                         tracker's bytes per task.
-- KEYS[7] metrics  HASH   the fleet-wide counters (wfcelery/tracker/counters.py: fields, shards on a
--                         Redis Cluster); KEYS[1] again when metrics are off (wfcelery_metrics = False).
--                         A script's own keys come after it, from KEYS[8] on.
local K_RUN, K_NODES, K_DEPS, K_RESULTS, K_ERRORS, K_EVENTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local K_METRICS = KEYS[7] ~= KEYS[1] and KEYS[7] or nil
local N_RUN_KEYS = 6

-- Redis's Lua puts at most ~8000 values on its stack (LUAI_MAXCSTACK): a command with more arguments (a
-- run with 10,000 roots, a node with 10,000 parents) goes in chunks.
local CHUNK = 4000  -- even: a chunk of field/value pairs never splits a pair
local function hset_all(key, flat)
  for first = 1, #flat, CHUNK do
    redis.call('HSET', key, unpack(flat, first, math.min(first + CHUNK - 1, #flat)))
  end
end
local function hmget_all(key, fields)
  local out = {}
  for first = 1, #fields, CHUNK do
    local last = math.min(first + CHUNK - 1, #fields)
    local values = redis.call('HMGET', key, unpack(fields, first, last))
    for i = 1, last - first + 1 do
      out[first + i - 1] = values[i]
    end
  end
  return out
end

local TERMINAL = {S = true, F = true, K = true, X = true}
local COUNTER = {S = 'n_S', F = 'n_F', K = 'n_K', X = 'n_X'}

-- Run-record fields the hot scripts (start, succeed) read, fetched with one HMGET by prefetch(); a
-- prefetched field the script then writes is kept current (finish_run's status). Others: one HGET.
local RUN = {}
local function prefetch(...)
  local names = {...}
  local values = redis.call('HMGET', K_RUN, unpack(names))
  for i = 1, #names do
    RUN[names[i]] = values[i] or false
  end
end

local function run_field(name)
  local v = RUN[name]
  if v == nil then
    return redis.call('HGET', K_RUN, name)
  end
  return v
end

-- Fields written once at submit, read at most once per call. A field left out at submit because it held
-- its default (RUN_DEFAULTS, prepended by the loader from records.RUN_DEFAULTS) reads as that default.
local CONST = {}
local function const(name)
  local v = CONST[name]
  if v == nil then
    v = run_field(name) or RUN_DEFAULTS[name] or false
    CONST[name] = v
  end
  return v
end

-- The run's 'done' counter as this call last wrote it (nil: not written by this call).
local DONE = nil

local function rel_now()
  return now_ms() - tonumber(const('created'))
end

-- A node record: status, epoch, attempts (a), start, finish, worker number, and -- only once a retry of the
-- run gave the node its retries again -- the attempts before that retry (b): its budget counts from there.
local function get_node(idx)
  local v = redis.call('HGET', K_NODES, idx)
  if not v then
    return {s = 'P', e = 0, a = 0, st = '', fi = '', w = '', b = 0}
  end
  local s, e, a, st, fi, w, b = string.match(v, '^(%a)|(%d+)|(%d+)|(%-?%d*)|(%-?%d*)|([^|]*)|?(%d*)$')
  return {s = s, e = tonumber(e), a = tonumber(a), st = st, fi = fi, w = w, b = tonumber(b) or 0}
end

local function put_node(idx, n)
  local v = n.s .. '|' .. n.e .. '|' .. n.a .. '|' .. n.st .. '|' .. n.fi .. '|' .. n.w
  if n.b and n.b > 0 then
    v = v .. '|' .. n.b
  end
  redis.call('HSET', K_NODES, idx, v)
end

-- Append one line to the event log ("<ms> <node> <status>[ <epoch>]", the epoch only when not 0); past
-- 'maxlen' bytes the older half is dropped ('ev_base' counts the bytes dropped so readers' offsets stay valid).
-- 'ago': the transition happened that many ms before now (a start recorded after its body began).
local function event(idx, code, epoch, ago)
  local line = (rel_now() - (tonumber(ago) or 0)) .. ' ' .. idx .. ' ' .. code
  if tonumber(epoch) ~= 0 then
    line = line .. ' ' .. epoch
  end
  local len = redis.call('APPEND', K_EVENTS, line .. '\n')
  local cap = tonumber(const('maxlen'))
  if len > cap then
    local keep = redis.call('GETRANGE', K_EVENTS, len - math.floor(cap / 2), -1)
    local cut = string.find(keep, '\n', 1, true) or 0
    keep = string.sub(keep, cut + 1)
    redis.call('SET', K_EVENTS, keep, 'KEEPTTL')
    redis.call('HINCRBY', K_RUN, 'ev_base', len - #keep)
  end
end

-- An attempt's error: the slot's own errors field keeps the latest (with its traceback); field 'h:<slot>'
-- keeps every attempt's, oldest first, as a JSON list of {attempt, at, type, message} (records.NodeErrors:
-- the last HISTORY_MAX, each message cut to HISTORY_CHARS). 'at' is the ms since the run's creation of
-- the transition this error came with, as in its event line.
local HISTORY_MAX, HISTORY_CHARS = 10, 500

-- The first 'limit' bytes of UTF-8 text, never cutting a character in two.
local function utf8_head(text, limit)
  if #text <= limit then
    return text
  end
  local cut = limit
  local nxt = string.byte(text, cut + 1)
  while cut > 0 and nxt >= 0x80 and nxt < 0xC0 do
    cut = cut - 1
    nxt = string.byte(text, cut + 1)
  end
  return string.sub(text, 1, cut)
end

local function record_error(idx, n, err_json)
  redis.call('HSET', K_ERRORS, idx, err_json)
  local ok, err = pcall(cjson.decode, err_json)
  if not ok or type(err) ~= 'table' then
    err = {}
  end
  local message = tostring(err.message or '')
  local entry = {attempt = n.a, at = rel_now(), type = tostring(err.type or 'Error'),
                 message = utf8_head(message, HISTORY_CHARS)}
  local raw = redis.call('HGET', K_ERRORS, 'h:' .. idx)
  local list = raw and cjson.decode(raw) or {}
  table.insert(list, entry)
  while #list > HISTORY_MAX do
    table.remove(list, 1)
  end
  redis.call('HSET', K_ERRORS, 'h:' .. idx, cjson.encode(list))
end

-- A report of an attempt the tracker never saw start: its release or its start was among the last writes
-- of a master lost in a failover (asynchronous replication), while its message went out and its body ran.
-- Record the start it missed, so the node moves through RUNNING as the transition table says.
-- Metrics (wfcelery/tracker/counters.py owns the fields): counted here, in the call that makes the
-- transition. BUCKETS_MS is prepended by the loader from counters.BUCKETS_MS.
local STATUS_NAME = {S = 'SUCCEEDED', F = 'FAILED', K = 'SKIPPED', X = 'REVOKED', Y = 'RETRYING'}
local LABELS = nil

-- '<task>\t<queue>' of a node or instance slot, from the run's label table (run fields 'ml', 'mn').
local function node_label(slot)
  if not LABELS then
    LABELS = {}
    for line in string.gmatch(const('ml') or '', '[^\n]+') do
      table.insert(LABELS, line)
    end
  end
  local mn, code = const('mn'), 48  -- no 'mn': every node has the table's first line (one (task, queue) pair)
  if mn then
    code = string.byte(mn, tonumber(string.match(slot, '^%d+')) + 1)
  end
  return (code and LABELS[code - 47]) or 'other\tother'
end

local function observe(kind, label, ms)
  if ms < 0 then
    ms = 0
  end
  local le = 'inf'
  for _, bound in ipairs(BUCKETS_MS) do
    if ms <= bound then
      le = bound
      break
    end
  end
  redis.call('HINCRBY', K_METRICS, kind .. '\t' .. label .. '\t' .. le, 1)
  redis.call('HINCRBY', K_METRICS, kind .. 's\t' .. label, ms)
end

-- A node (or instance) whose attempt was RUNNING ('was') reached status 'code' (a terminal one or Y).
local function count_node(slot, n, code, was)
  if not K_METRICS then
    return
  end
  local label = node_label(slot)
  redis.call('HINCRBY', K_METRICS, 'n\t' .. label .. '\t' .. STATUS_NAME[code], 1)
  if was == 'R' and n.st ~= '' then
    observe('d', label, rel_now() - tonumber(n.st))
  end
end

-- A QUEUED node starts: its wait (the node record keeps the time it was queued in its 5th field).
-- 'ago': ms since the body started, when its start is recorded after it (a local gate's start).
local function count_wait(slot, n, ago)
  if K_METRICS and n.s == 'Q' and n.fi ~= '' then
    local label = node_label(slot)
    observe('w', string.match(label, '\t(.*)$'), math.max(0, rel_now() - (tonumber(ago) or 0) - tonumber(n.fi)))
  end
end

-- Workers are numbered once per run ('w:<hostname>' -> number) so each node stores a short number.
local function worker_number(worker)
  local wid = run_field('w:' .. worker)
  if not wid then
    wid = redis.call('HINCRBY', K_RUN, 'nw', 1)
    redis.call('HSET', K_RUN, 'w:' .. worker, wid)
  end
  return wid
end

-- A node reported finished whose start was never recorded: record it now (RUNNING, one more attempt).
-- With the reporting worker (a body its leased gate let start, worker/gate.py: the start is recorded with
-- the report, one call for both) also its wait, its start time ('ago' ms before now) and its worker; then
-- returns '<attempt>:<ms it waited QUEUED, or empty>' (as start.lua), else false.
local function start_unseen(idx, n, worker, ago)
  local recorded = false
  if n.s == 'P' or n.s == 'Q' then
    if worker and worker ~= '' then
      local waited = ''
      if n.s == 'Q' and n.fi ~= '' then
        waited = math.max(0, rel_now() - (tonumber(ago) or 0) - tonumber(n.fi))
      end
      recorded = (n.a + 1) .. ':' .. waited
      count_wait(idx, n, ago)
      n.st = tostring(rel_now() - (tonumber(ago) or 0))
      n.fi = ''
      n.w = worker_number(worker)
      if not run_field('started') then  -- prefetched by succeed.lua: one write per run, not per node
        redis.call('HSET', K_RUN, 'started', now_ms())
      end
    end
    n.s = 'R'
    n.a = n.a + 1
    event(idx, 'R', n.e, worker and worker ~= '' and ago or nil)
  end
  return recorded
end

local function count_run(field, by)
  if K_METRICS then
    redis.call('HINCRBY', K_METRICS, field, by)
  end
end

local function workflow_label()
  return const('mw') or const('name')
end

-- Queue node n at epoch e: QUEUED, stamped with the time (the node record's 5th field while QUEUED).
local function queue_node(idx, n, e)
  n.s = 'Q'
  n.e = e
  n.fi = tostring(rel_now())
  put_node(idx, n)
  event(idx, 'Q', e)
end

-- Move node idx to a terminal status, keeping the run's counters exact. 'quiet': not counted in the
-- metrics (a mapped node whose instances were counted one by one).
local function settle(idx, n, code, quiet)
  local was = n.s
  n.s = code
  n.fi = tostring(rel_now())
  put_node(idx, n)
  redis.call('HINCRBY', K_RUN, COUNTER[code], 1)
  DONE = redis.call('HINCRBY', K_RUN, 'done', 1)
  event(idx, code, n.e)
  if not quiet then
    count_node(idx, n, code, was)
  end
end

-- Instances of a mapped node: slot '<node>:<i>' in the nodes, results and errors hashes (records.py).
-- The run record keeps per mapped node 'm:<node>' (instances), 'md:<node>' (terminal ones), 'mF:<node>'
-- and 'mX:<node>' (failed, revoked). Instances do not count in 'total' / 'done': their node does.
local function instance_of(slot)
  return string.match(slot, '^(%d+):%d+$')
end

-- A map whose instances all succeeded: its result is the list of their results in element order.
local function gather_map(node, count)
  local parts = {}
  for first = 0, count - 1, 1000 do
    local fields = {}
    for i = first, math.min(first + 999, count - 1) do
      table.insert(fields, node .. ':' .. i)
    end
    local values = redis.call('HMGET', K_RESULTS, unpack(fields))
    for i = 1, #fields do
      table.insert(parts, values[i] or 'null')
    end
    redis.call('HDEL', K_RESULTS, unpack(fields))
  end
  redis.call('HSET', K_RESULTS, node, '[' .. table.concat(parts, ',') .. ']')
end

-- settle() for a node or an instance. Returns the node index (a number) and its status when this made a
-- node terminal (an instance: when it was its map's last), else nil.
local function settle_slot(slot, n, code)
  local node = instance_of(slot)
  if not node then
    settle(slot, n, code)
    return tonumber(slot), code
  end
  local was = n.s
  n.s = code
  n.fi = tostring(rel_now())
  put_node(slot, n)
  event(slot, code, n.e)
  count_node(slot, n, code, was)
  if code ~= 'S' then
    redis.call('HINCRBY', K_RUN, 'm' .. code .. ':' .. node, 1)
  end
  local count = tonumber(run_field('m:' .. node))
  if redis.call('HINCRBY', K_RUN, 'md:' .. node, 1) < count then
    return nil
  end
  local c = redis.call('HMGET', K_RUN, 'mF:' .. node, 'mX:' .. node)
  local agg = tonumber(c[1] or 0) > 0 and 'F' or (tonumber(c[2] or 0) > 0 and 'X' or 'S')
  if agg == 'S' then
    gather_map(node, count)
  end
  local nn = get_node(node)
  if TERMINAL[nn.s] then
    return nil
  end
  settle(node, nn, agg, true)
  return tonumber(node), agg
end

-- Undo settle's counting when a control operation re-queues a terminal node.
local function unsettle(code)
  if TERMINAL[code] then
    redis.call('HINCRBY', K_RUN, COUNTER[code], -1)
    DONE = redis.call('HINCRBY', K_RUN, 'done', -1)
  end
end

local function expire_all()
  local ttl = const('ttl')
  for i = 1, N_RUN_KEYS do
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end

-- A finished run may still get late writes (nodes that were running when it was cancelled or failed):
-- keep every key on the run's TTL.
local function touch_if_finished(status)
  if status ~= 'RUNNING' and status ~= 'PAUSED' and status ~= 'QUEUED' then
    expire_all()
  end
end

-- End the run once. Returns {status, callback-or-false, epoch, run key-or-false, created ms, parent-or-false,
-- admission group-or-false} for the caller (callback, worker gate, the run key's TTL, the history index,
-- the next QUEUED run of its admission group: ops/admission.py).
local function finish_run(status)
  redis.call('HSET', K_RUN, 'status', status, 'finished', now_ms())
  if RUN['status'] ~= nil then
    RUN['status'] = status
  end
  redis.call('DEL', K_DEPS)
  event('run', status, run_field('epoch'))
  -- APPEND grows the log's buffer by doubling; rewrite the finished log once to drop the slack (~30%)
  local log = redis.call('GET', K_EVENTS)
  if log then
    redis.call('SET', K_EVENTS, log)
  end
  expire_all()
  redis.call('PUBLISH', string.sub(K_RUN, 1, -4) .. 'done', status)  -- keys.done_channel: ':run' -> ':done'
  local wf = workflow_label()
  count_run('r\t' .. wf .. '\t' .. status, 1)
  count_run('a\t' .. wf, -1)
  local cb = run_field(status == 'SUCCEEDED' and 'on_success' or 'on_failure')
  return {
    status, cb or false, tonumber(run_field('epoch')), run_field('key') or false, tonumber(const('created')),
    run_field('parent') or false,  -- a child run's parent (records.ParentLink): its node settles now
    run_field('adm') or false,  -- its admission group (runlimits.Admission): its end admits the next run
  }
end

-- When every node is terminal, a RUNNING run ends.
local function maybe_finish()
  if run_field('status') ~= 'RUNNING' then
    return false
  end
  local done = DONE or tonumber(redis.call('HGET', K_RUN, 'done'))
  if done < tonumber(const('total')) then
    return false
  end
  local c = redis.call('HMGET', K_RUN, 'n_F', 'n_X')
  -- SKIPPED alone does not fail a run (a false condition); a skip caused by a failure comes with an F or X
  local bad = tonumber(c[1] or 0) + tonumber(c[2] or 0)
  return finish_run(bad > 0 and 'FAILED' or 'SUCCEEDED')
end

-- Revoke (mark X) every node that has not started; returns {idx, epoch, ...} of those with a message out.
local function revoke_unstarted()
  local out = {}
  local total = tonumber(const('total'))
  for idx = 0, total - 1 do
    local n = get_node(idx)
    if not TERMINAL[n.s] and n.s ~= 'R' then
      if n.s == 'Q' or n.s == 'Y' then
        table.insert(out, idx)
        table.insert(out, n.e)
      end
      settle(idx, n, 'X')
    end
  end
  return out
end

-- Trigger rules, for plans with a trigger rule or condition (wfcelery/rules.py is the specification:
-- decide() and Cascade). SPEC is decoded from the calling script's ARGV (nil for plain plans):
--   {r = '<one rule letter per node>', p = {parents per node}, c = {{children}, ...}, v = '<1: survives fail_fast>',
--    m = {map source index per node, -1: not mapped}}
--   rule letters: s all_success, d all_done, a all_failed, f one_failed, o one_success, n none_failed
-- A waiting node's K_DEPS field holds '<succeeded>,<failed>,<skipped>' parents so far (a bare number, as
-- plain plans and replan write it, is succeeded parents only). A parent 'failed' when FAILED, REVOKED or
-- skipped because something upstream failed; the reason of a skip is the node's error record.
local SKIPPED_BY = {
  uf = '{"type":"UpstreamFailed","message":"skipped: a parent failed, was revoked or was skipped by a failure"}',
  skip = '{"type":"Skipped","message":"skipped: its trigger rule was not met"}',
}

local function get_tally(idx)
  local v = redis.call('HGET', K_DEPS, idx)
  if not v then
    return 0, 0, 0
  end
  local ok, bad, skip = string.match(v, '^(%d+),?(%d*),?(%d*)$')
  return tonumber(ok), tonumber(bad) or 0, tonumber(skip) or 0
end

-- rules.decide: 'run', 'wait', 'skip' (skipped) or 'uf' (upstream failed)
local function decide(rule, total, ok, bad, skip)
  if total == 0 then
    return 'run'
  end
  if (rule == 's' or rule == 'n') and bad > 0 then
    return 'uf'
  end
  if rule == 'a' and (ok > 0 or skip > 0) then
    return 'skip'
  end
  if ok + bad + skip < total then
    return 'wait'
  end
  if (rule == 's' and skip > 0) or (rule == 'f' and bad == 0) then
    return 'skip'
  end
  if rule == 'o' and ok == 0 then
    return skip == total and 'skip' or 'uf'
  end
  return 'run'
end

-- rules.map_verdict: a mapped node its rule lets run still needs its map source's list.
local function map_verdict(source)
  local n = get_node(source)
  if n.s == 'S' then
    return 'run'
  end
  if n.s == 'K' then
    local why = redis.call('HGET', K_ERRORS, source)
    return (why and string.find(why, '"UpstreamFailed"', 1, true)) and 'uf' or 'skip'
  end
  return 'uf'
end

-- rules.Cascade.settle: node 'start' became terminal with outcome 'ok' | 'bad' | 'skip'; count it into its
-- children, queue those whose rule says run (appended to 'released'), skip those it settles, and go on
-- from every skipped node. Only PENDING children are decided: QUEUED and terminal ones were decided before.
local function cascade(spec, start, outcome, run_epoch, released)
  local stack = {{start, outcome}}
  while #stack > 0 do
    local top = table.remove(stack)
    for _, child in ipairs(spec.c[top[1] + 1]) do
      local c = get_node(child)
      if c.s == 'P' then
        local ok, bad, skip = get_tally(child)
        if top[2] == 'ok' then
          ok = ok + 1
        elseif top[2] == 'bad' then
          bad = bad + 1
        else
          skip = skip + 1
        end
        local verdict = decide(string.sub(spec.r, child + 1, child + 1), spec.p[child + 1], ok, bad, skip)
        if verdict == 'run' and spec.m[child + 1] >= 0 then
          verdict = map_verdict(spec.m[child + 1])
        end
        if verdict == 'wait' then
          redis.call('HSET', K_DEPS, child, ok .. ',' .. bad .. ',' .. skip)
        else
          redis.call('HDEL', K_DEPS, child)
          c.e = run_epoch
          if verdict == 'run' then
            queue_node(child, c, run_epoch)
            table.insert(released, child)
          else
            redis.call('HSET', K_ERRORS, child, SKIPPED_BY[verdict])
            settle(child, c, 'K')
            table.insert(stack, {child, verdict == 'uf' and 'bad' or 'skip'})
          end
        end
      end
    end
  end
end

-- fail_fast for plans with trigger rules: revoke every node and instance that has not started except the
-- survivors (failure handlers and what depends only on them), then count the revoked nodes (and the maps
-- this completed) into their children. Returns {slot, epoch, ...} of the revoked messages that were out.
local function revoke_unless_survivor(spec, run_epoch, released)
  local out, ended = {}, {}
  for idx = 0, tonumber(const('total')) - 1 do
    local n = get_node(idx)
    local keep = string.sub(spec.v, idx + 1, idx + 1) == '1'
    if not keep and not TERMINAL[n.s] and n.s ~= 'R' then
      if n.s == 'Q' or n.s == 'Y' then
        table.insert(out, idx)
        table.insert(out, n.e)
      end
      settle(idx, n, 'X')
      table.insert(ended, {idx, 'bad'})
    elseif not keep and n.s == 'R' and run_field('m:' .. idx) then
      for i = 0, tonumber(run_field('m:' .. idx)) - 1 do
        local slot = idx .. ':' .. i
        local inst = get_node(slot)
        if inst.s == 'Q' or inst.s == 'Y' then
          table.insert(out, slot)
          table.insert(out, inst.e)
          local node, code = settle_slot(slot, inst, 'X')
          if node then
            table.insert(ended, {node, code == 'S' and 'ok' or 'bad'})
          end
        end
      end
    end
  end
  for _, e in ipairs(ended) do
    cascade(spec, e[1], e[2], run_epoch, released)
  end
  return out
end

-- The plain counters: ARGV from `first` on is pairs (child index, its number of parents); one more parent
-- of each child is done. A child whose parents are all done and that is still PENDING goes QUEUED and into
-- `released`. Shared by succeed.lua and a no-task node's end (ops/lua/_waiting.lua).
local function release_counted(first, run_epoch, released)
  for i = first, #ARGV, 2 do
    local child, parents = ARGV[i], tonumber(ARGV[i + 1])
    if parents == 1 or redis.call('HINCRBY', K_DEPS, child, 1) >= parents then
      local c = get_node(child)
      if c.s == 'P' then
        if parents > 1 then
          redis.call('HDEL', K_DEPS, child)
        end
        queue_node(child, c, run_epoch)
        table.insert(released, tonumber(child))
      end
    end
  end
end
