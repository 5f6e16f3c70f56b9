-- One run key's index key (not a per-run script: it touches one key, in any Cluster slot).
-- KEYS[1] runkey   STRING  the claim: records.RunKeyClaim, "<run id>|<claimed at ms>"
-- ARGV[1] op: 'claim' | 'release' | 'expire'
-- claim:   ARGV[2] the new claim, ARGV[3] its TTL (ms), ARGV[4] the claim expected there ('' = none).
--          Writes the new claim when the key is free or still holds the expected claim (a takeover is a
--          compare-and-set). Reply: false when written, else the claim that holds the key.
-- release: ARGV[2] run id. Deletes the key if that run holds it. Reply: 1 if deleted, else 0.
-- expire:  ARGV[2] run id, ARGV[3] TTL (ms). Sets the key's TTL if that run holds it. Reply: 1 or 0.
local op = ARGV[1]
local current = redis.call('GET', KEYS[1])
if op == 'claim' then
  if current and current ~= ARGV[4] then
    return current
  end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return false
end
local mine = current and string.sub(current, 1, #ARGV[2] + 1) == ARGV[2] .. '|'
if not mine then
  return 0
end
if op == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
