-- Shared by the scripts of nodes with no task (arm, signal, timer, child), prepended after
-- tracker/lua/_common.lua. A node with no task is QUEUED when released like any node; arm.lua makes it
-- WAITING and writes its wait mark, run-record field 'wt:<node>' = '<s|t|r>|<ms or empty>|<child run or
-- empty>' (records.WaitMark: a wait's timeout deadline, a sleep's end (Redis clock, ms), a child run's id).

local function get_mark(idx)
  local v = redis.call('HGET', K_RUN, 'wt:' .. idx)
  if not v then
    return nil
  end
  local kind, at, run = string.match(v, '^(%a)|(%d*)|(.*)$')
  return {kind = kind, at = at, run = run, raw = v}
end

-- A WAITING node succeeds with 'result' (JSON; 'null' stores none): settle it and release its children as
-- succeed.lua does (only while the run is RUNNING; resume re-plans the rest). 'spec': the plan's
-- trigger-rule SPEC as JSON, or '' for a plain plan, whose children come as ARGV pairs from 'first' on
-- (child index, number of its parents). Returns {finish, run epoch, params, {released...}}
-- (outcomes.SucceedOutcome).
local function succeed_waiting(idx, n, result, spec, first)
  if result ~= 'null' then
    redis.call('HSET', K_RESULTS, idx, result)
  end
  settle(idx, n, 'S')
  local status = run_field('status')
  local run_epoch = tonumber(run_field('epoch'))
  local released = {}
  if status == 'RUNNING' and spec ~= '' then
    cascade(cjson.decode(spec), tonumber(idx), 'ok', run_epoch, released)
  elseif status == 'RUNNING' then
    release_counted(first, run_epoch, released)
  end
  local params = #released > 0 and (const('params') or '{}')
  local finish = maybe_finish()
  touch_if_finished(status)
  return {finish, run_epoch, params, released}
end
