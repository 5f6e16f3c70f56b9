-- create: write a new run (Engine.submit) in one atomic step: the run record, its queued roots and their
-- events, and -- when KEYS[9..12] are given (one Redis; a Redis Cluster client writes them itself, first)
-- the shared plan, the run index and the live set.
-- Refuses when the run's tombstone exists: a submit that could not tell whether this write reached Redis
-- settled it (settle.lua) and told its caller nothing was submitted, so a write that lands late (a hung
-- server executing what it had received) creates nothing.
-- The run is written *unconfirmed*: field 'unconfirmed' holds the Redis time (ms) after which the
-- reconciler cancels it if it never started. The client deletes the field once the roots' messages are
-- out (Tracker.confirm_run); until then the reconciler never re-sends the run's nodes.
-- KEYS[1..6] the run's keys (keys.RUN_KEYS order)   KEYS[7] the counters (_common.lua)
-- KEYS[8] its tombstone (keys.void)
-- KEYS[9] the plan   KEYS[10] the run index   KEYS[11] the live set   KEYS[12] the workflow's history
-- index (keys.runs_of)   (only on one Redis)
-- ARGV[1] the run record, a JSON object of strings (records.new_run)
-- ARGV[2] the roots' node records, a JSON object node index -> record (records.NodeRecord)
-- ARGV[3] the roots' event lines (records.Event)
-- ARGV[4] ms from now after which the run, still unconfirmed and never started, may be cancelled
-- ARGV[5] the run id   ARGV[6] its creation time (ms, the index's score)
-- ARGV[7] the plan (JSON)   ARGV[8] the plan's TTL (seconds)
-- Returns {'created', plan} (plan: 1 when this call wrote the plan key -- only its creator may delete it),
-- {'exists', 0} (a second delivery of this call: nothing written) or {'void', 0} (the tombstone is there:
-- nothing written).
if redis.call('EXISTS', KEYS[8]) == 1 then
  return {'void', 0}
end
if redis.call('EXISTS', K_RUN) == 1 then
  return {'exists', 0}
end
local plan = 0
if #KEYS >= 12 then
  if redis.call('SET', KEYS[9], ARGV[7], 'EX', ARGV[8], 'NX') then
    plan = 1
  else
    redis.call('EXPIRE', KEYS[9], ARGV[8])  -- a plan already there lives as long as this run
  end
  redis.call('ZADD', KEYS[10], ARGV[6], ARGV[5])
  redis.call('SADD', KEYS[11], ARGV[5])
  redis.call('ZADD', KEYS[12], ARGV[6], ARGV[5])
end
local flat = {}
for field, value in pairs(cjson.decode(ARGV[1])) do
  table.insert(flat, field)
  table.insert(flat, value)
end
table.insert(flat, 'unconfirmed')
table.insert(flat, now_ms() + tonumber(ARGV[4]))
hset_all(K_RUN, flat)
local nodes = {}
for idx, record in pairs(cjson.decode(ARGV[2])) do
  table.insert(nodes, idx)
  table.insert(nodes, record)
end
if #nodes > 0 then
  hset_all(K_NODES, nodes)
end
if ARGV[3] ~= '' then
  redis.call('SET', K_EVENTS, ARGV[3])
end
count_run('a\t' .. workflow_label(), 1)  -- the active-runs gauge (counters.py)
return {'created', plan}
