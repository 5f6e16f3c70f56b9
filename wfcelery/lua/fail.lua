-- fail: a node's task raised (or was revoked while its run was RUNNING).
-- ARGV[1] node index   ARGV[2] epoch   ARGV[3] JSON {type, message, traceback}
-- ARGV[4] mode: 'failed' (the task raised), 'retrying' (Celery itself retries the task: Task.retry),
--               'revoked' (revoked by hand or expired)
-- ARGV[5] retries allowed by the node definition (tracker-level retries)
-- ARGV[6] JSON [descendant indexes] (used by the 'continue' policy)
-- ARGV[7] the attempt number start.lua gave the reporting execution (0: unknown, e.g. main process)
-- Returns {action, epoch, attempts, finish, revoke}  (tracker.FailOutcome):
--   action 'ignored'    stale or duplicate report: nothing written
--          'gone'       the run was deleted (cleaned up or expired): nothing written
--          'retrying'   Celery retries it (native retry), nothing to do
--          'retry'      re-publish the node (same id, this epoch) after a backoff for this many attempts
--          'failed'     the node failed for good
--   finish = false or {status, callback JSON or false, epoch} when this failure ended the run
--   revoke = {idx, epoch, idx, epoch, ...} of queued nodes to revoke (fail_fast)
local idx, epoch, mode = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local status = run_field('status')
if not status then
  return {'gone', 0, 0, false, {}}  -- the run was cleaned up (or expired): write nothing, or keys would outlive it
end
local n = get_node(idx)
if n.e ~= epoch or TERMINAL[n.s] then
  return {'ignored', 0, 0, false, {}}
end
local attempt = tonumber(ARGV[7]) or 0
if attempt > 0 and n.a > attempt then
  return {'ignored', 0, 0, false, {}}  -- a late report of an earlier attempt: a newer one already started (native retry)
end
if mode == 'retrying' and (status == 'RUNNING' or status == 'PAUSED') then
  n.s = 'Y'
  put_node(idx, n)
  redis.call('HSET', K_ERRORS, idx, ARGV[3])
  event(idx, 'Y', epoch)
  return {'retrying', 0, 0, false, {}}
end
redis.call('HSET', K_ERRORS, idx, ARGV[3])
if mode == 'failed' and status == 'RUNNING' and n.a <= tonumber(ARGV[5]) then
  n.s = 'Y'
  put_node(idx, n)
  event(idx, 'Y', epoch)
  return {'retry', epoch, n.a, false, {}}
end
settle(idx, n, mode == 'revoked' and 'X' or 'F')  -- a retry of a finished run's node is its end
if status == 'PAUSED' then
  -- no policy while paused: resume plans every node that has not succeeded again
  return {'failed', 0, 0, false, {}}
end
local out = {'failed', 0, 0, false, {}}
if status == 'RUNNING' then
  if const('policy') == 'fail_fast' then
    local revoke = revoke_unstarted()
    out[4] = finish_run('FAILED')
    out[5] = revoke
  else
    for _, d in ipairs(cjson.decode(ARGV[6])) do
      local dn = get_node(d)
      if not TERMINAL[dn.s] and dn.s ~= 'R' then
        settle(d, dn, 'K')
      end
    end
    out[4] = maybe_finish()
  end
end
touch_if_finished(run_field('status'))
return out
