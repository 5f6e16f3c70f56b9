-- values: which label values a metric may use (counters.py "Labels"); not a per-run script (no _common).
-- It only reads: the caller registers the values it was told are new once its run is written
-- (Metering.register_labels), so a submit that fails leaves nothing behind.
-- KEYS[1] the registry SET of one label kind   ARGV[1] how many values it may hold   ARGV[2..] values
-- Returns per value: 1 registered already, 2 new and within the cap, 0 over the cap (count as "other").
local cap, count = tonumber(ARGV[1]), redis.call('SCARD', KEYS[1])
local out = {}
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then
    table.insert(out, 1)
  elseif count < cap then
    count = count + 1
    table.insert(out, 2)
  else
    table.insert(out, 0)
  end
end
return out
