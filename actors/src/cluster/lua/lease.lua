-- ie_lease_v1: one owner per interview. The lease is a key set only when absent (SET NX PX), renewed and
-- released only by its holder's token (compare-and-set); each new owner gets a fencing token from INCR,
-- which every write of the interview's log carries (ie_log_v1 refuses an older one).
--
-- KEYS[1] the lease `<prefix>:v1:{iv:<id>}:owner` (value "<fence> <token> <node id>")
-- KEYS[2] the fencing counter `<prefix>:v1:{iv:<id>}:fence`
-- ARGV[1] acquire | renew | release | owner
-- ARGV[2] token (random per acquisition), ARGV[3] lease ms, ARGV[4] node id
local op = ARGV[1]
if op == 'acquire' then
  local cur = redis.call('GET', KEYS[1])
  if cur then return {0, cur, redis.call('PTTL', KEYS[1])} end
  local fence = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], fence .. ' ' .. ARGV[2] .. ' ' .. ARGV[4], 'NX', 'PX', tonumber(ARGV[3]))
  return {1, fence, tonumber(ARGV[3])}
end
local cur = redis.call('GET', KEYS[1])
if op == 'owner' then
  if not cur then return {0, '', 0} end
  return {1, cur, redis.call('PTTL', KEYS[1])}
end
local held = false
if cur then
  local _, _, tok = string.find(cur, '^%d+ (%S+) ')
  held = (tok == ARGV[2])
end
if op == 'renew' then
  if not held then return 0 end
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
if op == 'release' then
  if not held then return 0 end
  redis.call('DEL', KEYS[1])
  return 1
end
return redis.error_reply('ERR unknown lease operation ' .. tostring(op))
