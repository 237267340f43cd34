-- ie_admission_v1: admission into every window of one quota scope, as one atomic step on Redis server
-- time. Loaded by EVALSHA (actors/src/cluster/admission.rs); the key layout is version 1 (the `v1` in
-- the key prefix), and a layout change means a new prefix and a new script name.
--
-- KEYS[1]  the scope's base key, `<prefix>:v1:{q:<scope>}`; every key below extends it, so they share
--          its hash tag (one slot in Redis Cluster).
-- ARGV[1]  the operation: admit | settle | release | renew | block | usage | merge
-- ARGV[2]  its arguments as JSON (below)
--
-- Windows (`w`, a list): {k = "s", len = seconds, n = counter, l = limit} a sliding window of `len`
-- seconds kept in one-second buckets (a bucket counts until `len + 1` s after its second began, so
-- buckets can only make the window stricter); {k = "d" | "M", n, l} the calendar day / month in the
-- scope's reset time zone, whose UTC offset at this moment is `off` (ms). Counters: r requests,
-- t tokens, u provider cost units, m money (millionths).
--
-- Keys: :s<len> hash "<unix second>:<counter>" -> amount; :d:<day number> and :M:<yyyymm> hashes
-- counter -> amount; :c sorted set of concurrency leases (member reservation id, score expiry ms);
-- :r:<id> the reservation (what it added where, to settle or refund it); :seq reservation ids;
-- :block a cool-down (unix ms) set after a provider 429.
local base = KEYS[1]
local op = ARGV[1]
local a = cjson.decode(ARGV[2])
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)
local DAY = 86400000

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m > 2) and (m - 3) or (m + 9)
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = (mp < 10) and (mp + 3) or (mp - 9)
  if m <= 2 then y = y + 1 end
  return y, m
end

local off = tonumber(a.off or 0)
local day = math.floor((now_ms + off) / DAY)
local y, m = civil_from_days(day)
local ym = y * 100 + m
local ny, nm = y, m + 1
if nm > 12 then ny, nm = y + 1, 1 end
local month_end_ms = days_from_civil(ny, nm, 1) * DAY - off
local day_end_ms = (day + 1) * DAY - off

-- The live buckets of a sliding window (second -> counter -> amount); stale fields are deleted.
local sliding_cache = {}
local function sliding(len)
  local b = sliding_cache[len]
  if b then return b end
  b = {}
  local key = base .. ':s' .. len
  local flat = redis.call('HGETALL', key)
  local stale = {}
  for i = 1, #flat, 2 do
    local sec, n = string.match(flat[i], '^(%-?%d+):(%a)$')
    sec = tonumber(sec)
    if sec == nil or now_s - sec >= len + 1 then
      stale[#stale + 1] = flat[i]
    else
      local e = b[sec]
      if not e then e = {}; b[sec] = e end
      e[n] = (e[n] or 0) + tonumber(flat[i + 1])
    end
  end
  for i = 1, #stale, 1000 do
    redis.call('HDEL', key, unpack(stale, i, math.min(i + 999, #stale)))
  end
  sliding_cache[len] = b
  return b
end

local function window_key(w)
  if w.k == 's' then return base .. ':s' .. w.len end
  if w.k == 'd' then return base .. ':d:' .. day end
  return base .. ':M:' .. ym
end

-- Used amount of a window now; for a sliding window also the ms until `need` units have left it.
local function used(w, need)
  if w.k == 's' then
    local b = sliding(w.len)
    local u = 0
    for _, e in pairs(b) do u = u + (e[w.n] or 0) end
    local retry = nil
    if need and need > 0 then
      local secs = {}
      for s, _ in pairs(b) do secs[#secs + 1] = s end
      table.sort(secs)
      local excess = need
      for _, s in ipairs(secs) do
        excess = excess - (b[s][w.n] or 0)
        if excess <= 0 then
          retry = (s + w.len + 1) * 1000 - now_ms
          break
        end
      end
      retry = retry or ((w.len + 1) * 1000)
    end
    return u, retry
  end
  local u = tonumber(redis.call('HGET', window_key(w), w.n) or '0')
  if w.k == 'd' then return u, day_end_ms - now_ms end
  return u, month_end_ms - now_ms
end

local function ttl_of(w)
  if w.k == 's' then return (w.len + 2) * 1000 end
  if w.k == 'd' then return day_end_ms - now_ms + DAY end
  return month_end_ms - now_ms + DAY
end

local function field_of(w, sec)
  if w.k == 's' then return sec .. ':' .. w.n end
  return w.n
end

if op == 'admit' then
  -- a = {off, w = [...], c = {r, t, u, m}, cc = concurrency limit or nil, lease = ms, rttl = ms}
  local c = a.c
  local blk = tonumber(redis.call('GET', base .. ':block') or '0')
  if blk > now_ms then return {0, 'cooling_down', blk - now_ms, 0} end
  for i, w in ipairs(a.w) do
    if (c[w.n] or 0) > w.l then return {0, 'too_large', 0, i} end
  end
  local reason, retry, which = nil, 0, 0
  local usage = {}
  for i, w in ipairs(a.w) do
    local cost = c[w.n] or 0
    local u = used(w, nil)
    usage[i] = u
    if cost > 0 and u + cost > w.l then
      local _, r = used(w, u + cost - w.l)
      local why = (w.k == 's') and 'window' or ((w.k == 'd') and 'day' or 'month')
      -- The calendar windows dominate: nothing opens before them.
      if reason == nil or r > retry then reason, retry, which = why, r, i end
    end
  end
  if reason then return {0, reason, retry, which} end
  if a.cc then
    local ckey = base .. ':c'
    redis.call('ZREMRANGEBYSCORE', ckey, '-inf', now_ms)
    if redis.call('ZCARD', ckey) >= a.cc then
      local first = redis.call('ZRANGE', ckey, 0, 0, 'WITHSCORES')
      return {0, 'concurrency', math.max(1, tonumber(first[2]) - now_ms), 0}
    end
  end
  local id = redis.call('INCR', base .. ':seq')
  local entries = {}
  for i, w in ipairs(a.w) do
    local cost = c[w.n] or 0
    if cost > 0 then
      local key, field = window_key(w), field_of(w, now_s)
      redis.call('HINCRBY', key, field, cost)
      redis.call('PEXPIRE', key, ttl_of(w))
      entries[#entries + 1] = {key, field, w.n, cost}
      usage[i] = usage[i] + cost
    end
  end
  if a.cc then
    redis.call('ZADD', base .. ':c', now_ms + a.lease, id)
    redis.call('PEXPIRE', base .. ':c', a.lease * 2)
  end
  redis.call('SET', base .. ':r:' .. id, cjson.encode(entries), 'PX', a.rttl)
  local out = {1, id, now_ms, 0}
  for i = 1, #usage do out[#out + 1] = usage[i] end
  return out
end

if op == 'settle' or op == 'release' then
  -- a = {id, c = actual {t, u, m} (settle), sent = bool (release)}
  local rkey = base .. ':r:' .. a.id
  local raw = redis.call('GET', rkey)
  redis.call('ZREM', base .. ':c', a.id)
  if not raw then return 0 end
  redis.call('DEL', rkey)
  local actual = a.c or {}
  for _, e in ipairs(cjson.decode(raw)) do
    local key, field, n, reserved = e[1], e[2], e[3], e[4]
    local target
    if n == 'r' then
      target = (op == 'release' and not a.sent) and 0 or reserved
    else
      target = tonumber(actual[n] or 0)
    end
    local delta = target - reserved
    if delta ~= 0 and redis.call('EXISTS', key) == 1 then
      local now_v = tonumber(redis.call('HGET', key, field) or '0')
      if now_v + delta < 0 then delta = -now_v end
      redis.call('HINCRBY', key, field, delta)
    end
  end
  return 1
end

if op == 'renew' then
  -- a = {ids = [...], lease = ms}: concurrency leases of calls still running
  local n = 0
  for _, id in ipairs(a.ids) do
    n = n + redis.call('ZADD', base .. ':c', 'XX', 'CH', now_ms + a.lease, id)
    redis.call('PEXPIRE', base .. ':r:' .. id, a.lease * 2)
  end
  redis.call('PEXPIRE', base .. ':c', a.lease * 2)
  return n
end

if op == 'block' then
  -- a = {ms}: no admission in this scope for `ms` (a provider 429), unless already blocked longer
  local until_ms = now_ms + a.ms
  local cur = tonumber(redis.call('GET', base .. ':block') or '0')
  if until_ms > cur then redis.call('SET', base .. ':block', until_ms, 'PX', a.ms) end
  return math.max(until_ms, cur) - now_ms
end

if op == 'usage' then
  -- a = {off, w}: used amount per window, leases in flight, ms of cool-down left, server ms
  local out = {now_ms}
  local ckey = base .. ':c'
  redis.call('ZREMRANGEBYSCORE', ckey, '-inf', now_ms)
  out[2] = redis.call('ZCARD', ckey)
  local blk = tonumber(redis.call('GET', base .. ':block') or '0')
  out[3] = math.max(0, blk - now_ms)
  for i, w in ipairs(a.w) do out[#out + 1] = used(w, nil) end
  return out
end

if op == 'merge' then
  -- a = {off, s = [[len, sec, n, amount], ...], d = [[day, n, amount], ...], M = [[yyyymm, n, amount], ...]}
  -- usage a node admitted on its own while Redis was unreachable, added back when it returns.
  local added = 0
  for _, e in ipairs(a.s or {}) do
    local len, sec, n, amt = e[1], e[2], e[3], e[4]
    if now_s - sec < len + 1 and amt > 0 then
      local key = base .. ':s' .. len
      redis.call('HINCRBY', key, sec .. ':' .. n, amt)
      redis.call('PEXPIRE', key, (len + 2) * 1000)
      added = added + 1
    end
  end
  for _, e in ipairs(a.d or {}) do
    if e[1] == day and e[3] > 0 then
      local key = base .. ':d:' .. day
      redis.call('HINCRBY', key, e[2], e[3])
      redis.call('PEXPIRE', key, day_end_ms - now_ms + DAY)
      added = added + 1
    end
  end
  for _, e in ipairs(a.M or {}) do
    if e[1] == ym and e[3] > 0 then
      local key = base .. ':M:' .. ym
      redis.call('HINCRBY', key, e[2], e[3])
      redis.call('PEXPIRE', key, month_end_ms - now_ms + DAY)
      added = added + 1
    end
  end
  return added
end

return redis.error_reply('ERR unknown admission operation ' .. tostring(op))
