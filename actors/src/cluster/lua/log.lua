-- ie_log_v1: appends to an interview's shared log (a Redis Stream, entry id = "<seq>-0") only with the
-- current fencing token. A write carrying an older token (a former owner, paused or partitioned) is
-- refused with STALE; a seq that is not the next one is refused with SEQ (nothing is written twice or
-- out of order). The optional state blob (the session's record) is replaced in the same step.
--
-- KEYS[1] stream `<prefix>:v1:{iv:<id>}:log`, KEYS[2] fencing counter, KEYS[3] state blob key
-- ARGV[1] fence, ARGV[2] state blob or "" (keep), ARGV[3] ttl ms (0: none),
-- ARGV[4..] seq, payload, seq, payload, ...
local fence = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if fence ~= current then
  return redis.error_reply('STALE fencing token ' .. fence .. ' is not the current ' .. current)
end
local last = 0
local tail = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #tail > 0 then last = tonumber(string.match(tail[1][1], '^(%d+)')) end
local expect = last
for i = 4, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq ~= expect + 1 then
    return redis.error_reply('SEQ event ' .. tostring(seq) .. ' after ' .. expect)
  end
  expect = seq
end
for i = 4, #ARGV, 2 do
  redis.call('XADD', KEYS[1], ARGV[i] .. '-0', 'f', fence, 'e', ARGV[i + 1])
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[3], ARGV[2]) end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
  -- The fencing counter lives as long as the log it guards (it exists from the first acquisition).
  if current > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return expect
