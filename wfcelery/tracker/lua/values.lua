-- values: the label values a metric may use (counters.py "Labels"); not a per-run script (no _common).
-- KEYS[1] the registry SET of one label kind   ARGV[1] how many values it may hold   ARGV[2..] values
-- Returns one 1 (the value is, or now is, registered) or 0 (the registry is full: count it as "other")
-- per value.
local cap = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  local known = redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1
  if not known and redis.call('SCARD', KEYS[1]) < cap then
    redis.call('SADD', KEYS[1], ARGV[i])
    known = true
  end
  table.insert(out, known and 1 or 0)
end
return out
