-- start: a worker is about to run a node's task (called from the worker, before the task body).
-- This is the authoritative gate: it is atomic with pause/cancel, so no task of a paused or cancelled run
-- starts once pause() has returned.
-- ARGV[1] node index   ARGV[2] epoch of the message   ARGV[3] worker hostname
-- ARGV[4] 'granted' when the worker's own leased gate already let the body start (worker/gate.py): the
--         run's status is not asked again -- the body started before any pause or cancel that is now
--         recorded (they wait for the worker's acknowledgement) -- and the start is recorded as it was;
--         else ''.   ARGV[5] ('granted') ms since the body started
-- Returns 'ok:<attempt number>:<ms it waited QUEUED, or empty>' (run it), or why not: 'gone' (no such run), 'stale' (an older epoch's message),
-- 'done' (duplicate delivery of a finished node), 'gated' (run paused, cancelled or failed), 'running'
-- (the node is RUNNING in this epoch: a duplicate delivery).
local idx, epoch, worker = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local granted = ARGV[4] == 'granted'
prefetch('status', 'created', 'maxlen', 'ml', 'mn', 'w:' .. worker)
local status = run_field('status')
if not status then
  return 'gone'
end
local n = get_node(idx)
if n.e ~= epoch then
  return 'stale'
end
if TERMINAL[n.s] then
  return 'done'
end
if status ~= 'RUNNING' and not granted then
  settle_slot(idx, n, 'X')
  touch_if_finished(status)
  return 'gated'
end
local wid = run_field('w:' .. worker)
if n.s == 'R' and wid ~= n.w then
  -- Another delivery of a message that runs on another worker now (a broker redelivery past its
  -- visibility timeout, a duplicate publish): never a second, concurrent body. If that worker is gone, the
  -- reconciler re-publishes the node under a new epoch. On this same worker the main process already
  -- dropped a copy of a request it is running (hooks.py), so this is Celery's own requeue of a request
  -- whose pool process died: it runs again.
  return 'running'
end
if granted and n.s == 'R' then
  return 'ok:' .. n.a .. ':'  -- recorded already (a pipeline sent again after a lost reply)
end
local ago = granted and tonumber(ARGV[5]) or 0
local waited = ''
if n.s == 'Q' and n.fi ~= '' then
  waited = math.max(0, rel_now() - ago - tonumber(n.fi))
end
count_wait(idx, n, ago)
n.s = 'R'
n.a = n.a + 1
n.st = tostring(rel_now() - ago)
n.fi = ''
n.w = wid or worker_number(worker)
put_node(idx, n)
redis.call('HSETNX', K_RUN, 'started', now_ms())
event(idx, 'R', epoch, ago)
return 'ok:' .. n.a .. ':' .. waited
