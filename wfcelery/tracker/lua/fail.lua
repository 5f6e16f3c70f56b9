-- fail: a node's task raised (or was revoked while its run was RUNNING).
-- ARGV[1] node index   ARGV[2] epoch   ARGV[3] JSON {type, message, traceback}
-- ARGV[4] mode: 'failed' (the task raised), 'retrying' (Celery itself retries the task: Task.retry),
--               'revoked' (revoked by hand or expired), 'quarantined' (the reconciler gave up on it: its
--               deliveries never finished, or workers dropped its message)
-- ARGV[5] retries allowed by the node definition (tracker-level retries), counted from the node's base: a
--         retry of the run gives every node it runs again its full retries (replan.lua)
-- ARGV[6] JSON [descendant indexes] (used by the 'continue' policy)
-- ARGV[7] the attempt number start.lua gave the reporting execution (0: unknown, e.g. main process)
-- ARGV[8] the plan's trigger-rule SPEC as JSON (see _common.lua), or '' for a plan without rules/conditions:
--         then fail_fast spares the survivors, 'continue' skips by the rules, and nodes may be released
-- Returns {action, epoch, attempts, finish, revoke, released, params}  (tracker.FailOutcome):
--   action 'ignored'    stale or duplicate report: nothing written
--          'gone'       the run was deleted (cleaned up or expired): nothing written
--          'retrying'   Celery retries it (native retry), nothing to do
--          'retry'      re-publish the node (same id, this epoch) after a backoff for this many attempts
--          'deferred'   a retry while the run is PAUSED: the node is RETRYING and resume queues it again
--          'failed'     the node failed for good
--   finish = false or {status, callback JSON or false, epoch} when this failure ended the run
--   revoke = {idx, epoch, idx, epoch, ...} of queued nodes to revoke (fail_fast)
--   released = {idx, ...} nodes queued by the trigger rules (to publish), params = the run's params JSON
local idx, epoch, mode = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local status = run_field('status')
if not status then
  return {'gone', 0, 0, false, {}, {}, false}  -- the run was cleaned up (or expired): write nothing, or keys would outlive it
end
local n = get_node(idx)
if n.e ~= epoch or TERMINAL[n.s] then
  return {'ignored', 0, 0, false, {}, {}, false}
end
local attempt = tonumber(ARGV[7]) or 0
if attempt > 0 and n.a > attempt then
  return {'ignored', 0, 0, false, {}, {}, false}  -- a late report of an earlier attempt: a newer one already started (native retry)
end
if mode == 'failed' or mode == 'retrying' then  -- its body ran (a revoke or a quarantine may come unstarted)
  start_unseen(idx, n)
end
local live = status == 'RUNNING' or status == 'PAUSED'
if mode == 'retrying' and live then
  count_node(idx, n, 'Y', n.s)
  n.s = 'Y'
  put_node(idx, n)
  record_error(idx, n, ARGV[3])
  event(idx, 'Y', epoch)
  return {'retrying', 0, 0, false, {}, {}, false}
end
record_error(idx, n, ARGV[3])
if mode == 'quarantined' then
  count_run('x\tquarantined', 1)
end
local tries = n.a - n.b  -- attempts since the node's retries were last given (submit, or a retry of the run)
if mode == 'failed' and live and tries <= tonumber(ARGV[5]) then
  count_node(idx, n, 'Y', n.s)
  n.s = 'Y'
  put_node(idx, n)
  event(idx, 'Y', epoch)
  -- paused: not FAILED, only waiting; resume queues every RETRYING node again (replan.lua)
  return {status == 'PAUSED' and 'deferred' or 'retry', epoch, tries, false, {}, {}, false}
end
-- a retry of a finished run's node is its end; an instance ends its node when it is its map's last
local node, outcome = settle_slot(idx, n, mode == 'revoked' and 'X' or 'F')
if status == 'PAUSED' then
  -- no policy while paused: resume plans every node that has not succeeded again
  return {'failed', 0, 0, false, {}, {}, false}
end
local out = {'failed', 0, 0, false, {}, {}, false}
if status == 'RUNNING' and ARGV[8] ~= '' then
  local spec, run_epoch, released = cjson.decode(ARGV[8]), tonumber(run_field('epoch')), {}
  if const('policy') == 'fail_fast' then
    out[5] = revoke_unless_survivor(spec, run_epoch, released)
  end
  if node then
    cascade(spec, node, outcome == 'S' and 'ok' or 'bad', run_epoch, released)
  end
  out[2], out[6] = run_epoch, released
  if #released > 0 then
    out[7] = const('params') or '{}'
  end
  out[4] = maybe_finish()
elseif status == 'RUNNING' then
  if const('policy') == 'fail_fast' then
    local revoke = revoke_unstarted()
    out[4] = finish_run('FAILED')
    out[5] = revoke
  else
    for _, d in ipairs(cjson.decode(ARGV[6])) do
      local dn = get_node(d)
      if not TERMINAL[dn.s] and dn.s ~= 'R' then
        redis.call('HSET', K_ERRORS, d, SKIPPED_BY.uf)
        settle(d, dn, 'K')
      end
    end
    out[4] = maybe_finish()
  end
end
touch_if_finished(run_field('status'))
return out
