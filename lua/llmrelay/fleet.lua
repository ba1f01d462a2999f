-- llmrelay.fleet: the processes (hosts) of a fleet share one pool's budgets,
-- breakers and throttles through Redis (config `redis`, pool `name`).
--
-- Each process keeps its own state (csrc/pool.c) and, while Redis is up,
-- sends to an endpoint only from *leases* (csrc/fleet.h): a few attempts the
-- fleet's token bucket for that endpoint granted it, usable from the moment
-- the bucket frees them, returned when unused. One server-side script
-- (EVALSHA, reloaded on NOSCRIPT) does a whole exchange atomically: it takes
-- what this process learnt (the rate a server publishes or the client
-- configures, the last published `remaining`, a pause a server asked for,
-- failures, a breaker opened or closed), grants the leases asked for, and
-- answers with the fleet's view of every endpoint (throttle, breaker, probe
-- lock), which the process imports. Times cross hosts as durations measured
-- on Redis's clock (TIME), never as one host's monotonic clock.
--
-- A process exchanges with Redis when a request found no lease (about one
-- exchange per lease of several attempts) and, while it has work, at least
-- every PULL_EVERY s, so what one host learns reaches the others within
-- about two of those. Redis down, slow, restarted or flushed: the exchange
-- fails within its timeout, the process runs on local state at its last
-- known share of each endpoint's rate, and tries again with backoff.

local core = require "llmrelay.core"
local redis = require "llmrelay.redis"

local floor, min, max, huge = math.floor, math.min, math.max, math.huge
local tostring, tonumber, format, concat = tostring, tonumber, string.format, table.concat

local _M = {}
local Fleet = {}
Fleet.__index = Fleet
-- A member's Redis options (they hold the password) live here, not in its table: no dump shows them.
local private = setmetatable({}, { __mode = "k" })

local PULL_EVERY = 0.08   -- s between exchanges while the process has work (events go at once)
local LEASE_TTL = 0.5     -- s a lease stays usable after its start; the rest goes back
local AHEAD = 0.25        -- s of an endpoint's rate the fleet may reserve ahead of its bucket
local LEASE_FOR = 0.2     -- a lease holds about this many seconds of a member's share
local MAX_LEASE = 32
local UNKNOWN_LEASE = 2   -- the first lease while no process knows the endpoint's rate (it doubles after)
local PROBE_TTL = 5       -- s a half-open probe holds the fleet's probe lock at most
local MEMBER_TTL = 2      -- s without an exchange after which a process no longer counts
local KEY_TTL = 600       -- s the keys of an idle pool live
local BACKOFF_MIN, BACKOFF_MAX = 0.05, 2
local FAST_FAILURE, FAST_BACKOFF_MAX = 0.005, 0.2 -- s: a failure this quick is retried within 0.2 s
local TELL = 0.05         -- s: a pause or open period grown by less is not told again (csrc/fleet.h)

-- The token bucket with reservations, once: the Redis script and the local
-- fallback both run it. Takes n from a bucket of `tok` at time t (refilled
-- at `rate` up to `cap` until now); it may go up to `ahead` seconds of rate
-- into debt. -> granted (0 or n), seconds until usable (granted) or until
-- asking again is worth it (refused), the bucket's new level.
local BUCKET = [[
local function take(tok, t, rate, cap, n, now, ahead)
  tok = tok + (now - t) * rate
  if tok > cap then tok = cap end
  if tok - n < -rate * ahead then return 0, (n - rate * ahead - tok) / rate, tok end
  local wait = 0
  if tok < n then wait = (n - tok) / rate end
  return n, wait, tok - n
end
]]
local bucket_take = load(BUCKET .. " return take")()
local REPLY = 10 -- values per endpoint in the script's answer

-- KEYS: none (every key is under ARGV[1]; one Redis, not a cluster).
-- ARGV: prefix, member, this member's first attempts and retries since its
-- last exchange, its spend (USD) since then (-1: the pool has no budget), then
-- 18 fields per endpoint (see `push` below).
-- -> { members, the fleet's first attempts and retries in the last 10 s (the
--      retry budget's window), the fleet's spend (USD, no expiry; -1: no budget),
--      then 10 per endpoint: granted, from_in, retry_in, thr_in,
--      open_in (-1: half-open, this member probes), cooldown, fails, rate,
--      cap, tokens granted } (numbers as strings). A configured tpm is a
--      second bucket: a lease takes from both or from neither.
local SCRIPT = BUCKET .. format([[
local P, me = ARGV[1], ARGV[2]
local tm = redis.call('TIME')
local now = tonumber(tm[1]) + tonumber(tm[2]) / 1e6
local mk = P .. ':members'
redis.call('ZADD', mk, now, me)
redis.call('ZREMRANGEBYSCORE', mk, '-inf', now - %g)
redis.call('EXPIRE', mk, %d)
local out = { redis.call('ZCARD', mk) }
local function s(x) return string.format('%%.6f', x) end
-- the retry budget: first attempts and retries per second of Redis's clock, the last 10 summed
local bk, sec = P .. ':budget', math.floor(now)
if tonumber(ARGV[3]) > 0 then redis.call('HINCRBYFLOAT', bk, 'f' .. sec, ARGV[3]) end
if tonumber(ARGV[4]) > 0 then redis.call('HINCRBYFLOAT', bk, 'r' .. sec, ARGV[4]) end
redis.call('HDEL', bk, 'f' .. (sec - 10), 'r' .. (sec - 10))
redis.call('EXPIRE', bk, 30)
local bf, br = 0, 0
for q = sec - 9, sec do
  local v = redis.call('HMGET', bk, 'f' .. q, 'r' .. q)
  bf, br = bf + (tonumber(v[1]) or 0), br + (tonumber(v[2]) or 0)
end
out[2], out[3] = s(bf), s(br)
-- the budget: every member's spend, for the pool's lifetime (no TTL)
out[4] = '-1'
if tonumber(ARGV[5]) > 0 then
  out[4] = redis.call('INCRBYFLOAT', P .. ':spent', ARGV[5])
elseif tonumber(ARGV[5]) == 0 then
  out[4] = redis.call('GET', P .. ':spent') or '0'
end
local F = 18
local function refill(tok, t, rate, cap, back)
  if not tok then return cap end
  return math.min(cap, tok + (now - t) * rate + back)
end
for a = 5, #ARGV - 1, F do
  local name, want, back = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local prate, pcap = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local rem, rem_age = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
  local thr_for, open_for, pcool = tonumber(ARGV[a + 8]), tonumber(ARGV[a + 9]), tonumber(ARGV[a + 10])
  local fdelta, reset, closed = tonumber(ARGV[a + 11]), ARGV[a + 12] == '1', ARGV[a + 13] == '1'
  local kwant, kback, krate, kcap = tonumber(ARGV[a + 14]), tonumber(ARGV[a + 15]), tonumber(ARGV[a + 16]),
                                    tonumber(ARGV[a + 17])
  local held = tonumber(ARGV[a + 18])
  local k = P .. ':ep:' .. name
  local h = redis.call('HMGET', k, 'rate', 'cap', 'tok', 't', 'thr', 'open', 'cool', 'fails', 'probe', 'pu', 'ktok',
                       'ug', 'uf', 'born')
  -- ug: attempts granted since uf, while no rate was known
  local ug, uf, born = tonumber(h[12]) or 0, tonumber(h[13]) or 0, tonumber(h[14]) or 0
  local rate, cap = tonumber(h[1]) or 0, tonumber(h[2]) or 0
  local tok, t = tonumber(h[3]), tonumber(h[4]) or now
  local thr, open, cool, fails = tonumber(h[5]) or 0, tonumber(h[6]) or 0, tonumber(h[7]) or 0, tonumber(h[8]) or 0
  local probe, pu = h[9] or '', tonumber(h[10]) or 0
  if prate > 0 then
    rate, cap = prate, math.max(1, pcap)
  end
  if rate > 0 then
    local new = not tok
    tok = refill(tok, t, rate, cap, back)
    if new then
      -- a new bucket (the first rate anyone knew, or Redis restarted or flushed): what was granted
      -- before any rate was known is not in the server's remaining yet
      if uf > now - 1 then tok = tok - ug end
      ug, uf, born = 0, 0, now
    end
    -- leases granted by the bucket a flush or restart lost are still being spent: each member's
    -- first exchange with the new one takes what it still holds out of it
    if now - born < 1 and held > 0 and redis.call('SADD', k .. ':seen', me) == 1 then
      tok = tok - held
      redis.call('EXPIRE', k .. ':seen', 5)
    end
    -- what the server said remains is an upper bound (not extrapolated: the fleet kept sending since)
    if rem >= 0 and rem_age < 1 then tok = math.min(tok, rem) end
  end
  local ktok = tonumber(h[11])
  if krate > 0 then ktok = refill(ktok, t, krate, kcap, kback) end
  t = now
  if thr_for > 0 then thr = math.max(thr, now + thr_for) end
  if reset then fails = 0 end
  fails = fails + fdelta
  if open_for > 0 then
    if now + open_for > open then open = now + open_for end
    cool = pcool
    if probe == me then probe, pu = '', 0 end
  end
  if closed then open, fails, probe, pu = 0, 0, '', 0 end
  local granted, wait, retry, kgranted = 0, 0, 0, 0
  if want > 0 then
    if open > now then
      retry = open - now
    elseif open > 0 then
      if pu > now and probe ~= me then
        retry = math.min(pu - now, 0.1) -- the probe's answer may close it sooner
      else
        probe, pu, granted = me, now + %g, 1
      end
    elseif thr > now then
      retry = thr - now
    else
      local g, w, ntok = want, 0, tok
      if rate > 0 then
        g, w, ntok = take(tok, now, rate, cap, want, now, %g)
      else
        -- no rate known yet: the fleet's first answers will tell one within milliseconds, so a
        -- small quota for the whole fleet, doubling every 0.1 s (an endpoint that never
        -- publishes a limit is at full speed within a second)
        if uf < now - 10 then ug, uf = 0, now end
        if ug + want <= 4 * 2 ^ math.min(20, math.floor((now - uf) / 0.1)) then
          ug = ug + want
        else
          g, w = 0, 0.02
        end
      end
      local kg, kw, nktok = kwant, 0, ktok
      if g > 0 and krate > 0 and kwant > 0 then kg, kw, nktok = take(ktok, now, krate, kcap, kwant, now, %g) end
      if g > 0 and (kg > 0 or kwant <= 0) then
        granted, wait, tok, ktok, kgranted = g, math.max(w, kw), ntok, nktok, kg
      else
        retry = g > 0 and kw or w
      end
    end
  end
  redis.call('HSET', k, 'rate', s(rate), 'cap', s(cap), 'tok', s(tok or 0), 't', s(t), 'thr', s(thr),
             'open', s(open), 'cool', s(cool), 'fails', s(fails), 'probe', probe, 'pu', s(pu), 'ktok', s(ktok or 0),
             'ug', s(ug), 'uf', s(uf), 'born', s(born))
  redis.call('EXPIRE', k, %d)
  local left = 0
  if thr > now then left = thr - now end
  -- open_in: > 0 open that long (or another member probes); -1 half-open and the probe is this member's
  local open_in = 0
  if open > now then
    open_in = open - now
  elseif open > 0 then
    if probe == me then open_in = -1 else open_in = math.max(pu - now, 0.01) end
  end
  for _, v in ipairs({ granted, wait, retry, left, open_in, cool, fails, rate, cap, kgranted }) do
    out[#out + 1] = s(v)
  end
end
return out
]], MEMBER_TTL, KEY_TTL, PROBE_TTL, AHEAD, AHEAD, KEY_TTL)

local script = redis.script(SCRIPT)

-- This member's name in the fleet: unique across hosts (a worker's pid where
-- there is one, the start time, a table's address). Made at the first
-- exchange: a client made before nginx forks its workers gives each its own.
local function member_name()
  return format("%s%d-%s", ngx and ngx.worker and ngx.worker.pid() .. "-" or "", floor(core.wall() * 1e6),
                tostring({}):match("0x(%x+)") or tostring(math.random(1e9)))
end

-- A fleet member for a normalized config (cfg.redis holds redis.options()).
-- budget: the client's llmrelay.budget, or nil.
function _M.new(cfg, budget)
  local o = cfg.redis
  local names, n = {}, #cfg.endpoints
  for i, ep in ipairs(cfg.endpoints) do names[i] = ep.name end
  local self = setmetatable({
    display = o.display, prefix = o.prefix .. ":" .. cfg.name, member = nil, names = names, n = n,
    up = false, conn = nil, next_try = 0, backoff = BACKOFF_MIN,
    last_sync = -huge, members = 1, syncing = false,
    round_trips = 0, fallbacks = 0, errors = 0, last_error = nil, ever_up = false,
    known = {},     -- [i] = { rate =, cap = } as the fleet last said (for the local share)
    local_b = {},   -- [i] = { tok =, t = } the local request bucket while Redis is down
    local_k = {},   -- [i] = the same for tokens (configured tpm)
    sent = {},      -- [i] = what this process told the fleet last (pushes only changes)
    lease_src = {}, -- [i] = "redis" | "local": where the current lease came from
    unknown = {},   -- [i] = the next lease's size while the endpoint's rate is unknown
    told_first = 0, told_retry = 0, -- the first attempts and retries the fleet was told of
    budget = budget,
  }, Fleet)
  private[self] = o
  if budget then budget.exchanger = self end
  self.tk_on = {}
  for i, ep in ipairs(cfg.endpoints) do self.tk_on[i] = (ep.tpm or 0) > 0 end
  for i = 1, n do self.sent[i] = { fails = 0, open = 0, thr = 0, pub_at = 0, state = "closed" } end
  return self
end

-- The size of a lease for endpoint i: a member's share of LEASE_FOR seconds of the rate.
local function lease_size(self, i, v)
  local k = self.known[i]
  if not k or not (k.rate > 0) then
    -- no rate known anywhere in the fleet: small leases; once this member's answers from the
    -- endpoint published no limit, doubling while no server pushes back
    local u = self.unknown[i] or UNKNOWN_LEASE
    if v.answered then self.unknown[i] = min(MAX_LEASE, u * 2) end
    return u
  end
  local share = min(k.rate * LEASE_FOR, k.cap) / max(1, self.members)
  return max(1, min(MAX_LEASE, floor(share)))
end

-- The token lease's size (configured tpm): a member's share of LEASE_FOR
-- seconds, and at least what the largest waiting request needs.
local function token_lease(self, v)
  if not (v.tk_rate > 0) then return 0 end
  local share = floor(min(v.tk_rate * LEASE_FOR, v.tk_cap) / max(1, self.members))
  return max(1, share, v.tk_need)
end

-- What this process tells the fleet about endpoint i (18 fields), and
-- whether it asks for a lease.
local function push(self, x, i, now, args, wants)
  local fails, open_until, cool, thr, state = x:export(i, now)
  local v = x:fleet_view(i, now, true)
  local s = self.sent[i]
  local want, back, kwant, kback = 0, 0, 0, 0
  if wants[i] then
    want, kwant = lease_size(self, i, v), token_lease(self, v)
    if self.lease_src[i] == "redis" then back, kback = v.left, v.tk_left end
  elseif v.on and v.left > 0 and now >= v.until_ and self.lease_src[i] == "redis" then
    back, kback = v.left, v.tk_left -- expired unused: back to the buckets (and the lease is cleared below)
    wants[i] = "expired"
  end
  local rem, rem_age = -1, 0
  if v.pub_remaining >= 0 and v.pub_at > s.pub_at then
    rem, rem_age = v.pub_remaining, max(0, now - v.pub_at)
    s.pub_at = v.pub_at
  end
  local thr_for = 0
  if thr > now and (s.thr <= now or thr > s.thr + TELL) then
    thr_for, s.thr = thr - now, thr
    self.unknown[i] = nil -- a server pushed back: leases of an unknown rate start small again
  end
  local open_for = 0
  if state == "open" and open_until > now and (s.open <= now or open_until > s.open + TELL) then
    open_for, s.open = open_until - now, open_until
  end
  local fdelta, reset = 0, false
  if fails >= s.fails then fdelta = fails - s.fails else reset, fdelta = true, fails end
  -- the breaker closed here (a probe of this member's, or its own success after failures)
  local closed = state == "closed" and (s.state ~= "closed" or s.probing)
  if closed or state == "open" then s.probing = false end
  s.state = state
  local j = #args
  args[j + 1], args[j + 2], args[j + 3] = self.names[i], tostring(want), tostring(back)
  args[j + 4], args[j + 5] = format("%.6f", v.rate), format("%.6f", v.cap)
  args[j + 6], args[j + 7] = format("%.6f", rem), format("%.6f", rem_age)
  args[j + 8], args[j + 9], args[j + 10] = format("%.6f", thr_for), format("%.6f", open_for), format("%.6f", cool)
  args[j + 11], args[j + 12], args[j + 13] = tostring(fdelta), reset and "1" or "0", closed and "1" or "0"
  args[j + 14], args[j + 15] = format("%.6f", kwant), format("%.6f", kback)
  args[j + 16], args[j + 17] = format("%.6f", v.tk_rate), format("%.6f", v.tk_cap)
  -- what this member still holds of the fleet's leases (a new bucket after a flush takes it out)
  local held = 0
  if self.lease_src[i] == "redis" and v.on and now < v.until_ then held = v.left end
  args[j + 18] = format("%.6f", held)
  return want
end

-- A member's local bucket starts empty: the fleet was using the whole
-- budget when Redis went away, so the share refills before it is spent.
local function local_take(buckets, i, rate, cap, n, now)
  local b = buckets[i]
  if not b then
    b = { tok = 0, t = now }
    buckets[i] = b
  end
  local g, w, tok = bucket_take(b.tok, b.t, rate, cap, n, now, AHEAD)
  b.tok, b.t = tok, now
  return g, w
end

-- Applies the fleet's answer to endpoint i (REPLY values from r[at]).
local function pull(self, x, i, now, r, at, want)
  local granted, wait, retry = tonumber(r[at]), tonumber(r[at + 1]), tonumber(r[at + 2])
  local thr_in, open_in, cool, fails = tonumber(r[at + 3]), tonumber(r[at + 4]), tonumber(r[at + 5]), tonumber(r[at + 6])
  self.known[i] = { rate = tonumber(r[at + 7]), cap = tonumber(r[at + 8]) }
  if want then
    self.lease_src[i] = "redis"
    local from, tk = now + wait, -1
    if self.tk_on[i] then tk = tonumber(r[at + 9]) end
    x:fleet_grant(i, granted, from, from + LEASE_TTL, tk, from + LEASE_TTL, granted > 0 and 0 or now + max(retry, 0.001))
  end
  local s = self.sent[i]
  local open_until = 0
  if open_in > 0 then
    open_until = now + open_in
  elseif open_in < 0 then
    open_until, s.probing = now - 1e-3, true -- the fleet's cool-down is over: this member probes
  end
  x:import(i, now, fails, open_until, cool, thr_in > 0 and now + thr_in or 0, 0, false)
  local f, o, _, t, state = x:export(i, now)
  s.fails, s.state = f, state
  if state == "open" then s.open = max(s.open, o) end
  if t > s.thr then s.thr = t end
end

-- took: how long the failed exchange took. A quick failure (connection
-- refused: Redis is restarting) costs nothing to retry, so the member looks
-- again within FAST_BACKOFF_MAX and rejoins with the others; a slow one (a
-- timeout) would stall a plain-Lua loop for `timeout` each time, so it backs
-- off up to BACKOFF_MAX.
local function went_down(self, x, now, err, took)
  x:fleet_budget_others(0, 0) -- what the others spent is not known any more: this member's own budget holds
  self.errors = self.errors + 1
  self.last_error = err
  if self.conn then self.conn:close() end
  if self.up then self.local_b, self.local_k = {}, {} end -- a new outage: the local shares start empty
  self.conn, self.up = nil, false
  local cap = took < FAST_FAILURE and FAST_BACKOFF_MAX or BACKOFF_MAX
  self.next_try = now + min(cap, self.backoff) * (0.5 + math.random() * 0.5)
  self.backoff = min(BACKOFF_MAX, self.backoff * 2)
end

-- Redis is not there: leases come from a local bucket at this process's
-- last known share of the fleet's rate; an endpoint whose rate the fleet did
-- not know goes by this process's own state.
local function local_grants(self, x, now, wants)
  local m = max(1, self.members)
  for i = 1, self.n do
    -- nobody to tell what happened here while Redis is away: told, so it does not make exchanges due
    local k, v = self.known[i], x:fleet_view(i, now, true)
    if wants[i] then
      self.fallbacks = self.fallbacks + 1
      local rq, tk = k and k.rate > 0, self.tk_on[i] and v.tk_rate > 0
      if not rq and not tk then
        x:fleet_off(i)
      else
        local n, w, kg = MAX_LEASE, 0, -1
        if rq then
          local rate, cap = k.rate / m, max(1, k.cap / m)
          n, w = local_take(self.local_b, i, rate, cap, max(1, min(MAX_LEASE, floor(min(rate * LEASE_FOR, cap)))), now)
        end
        if n > 0 and tk then
          local rate, cap = v.tk_rate / m, max(1, v.tk_cap / m)
          local kw
          kg, kw = local_take(self.local_k, i, rate, cap, max(1, floor(min(rate * LEASE_FOR, cap)), v.tk_need), now)
          if kg == 0 then
            if rq then self.local_b[i].tok = self.local_b[i].tok + n end
            n, w = 0, kw
          end
        end
        self.lease_src[i] = "local"
        local from = now + (n > 0 and w or 0)
        x:fleet_grant(i, n, from, from + LEASE_TTL, kg, from + LEASE_TTL, n > 0 and 0 or now + w)
      end
    end
  end
end

-- One exchange with Redis for executor object x (a libcurl client or a relay).
local function exchange(self, x, now, wants)
  local c, err = self.conn
  if not c then
    c, err = redis.connect(private[self])
    if not c then return nil, err end
    self.conn = c
  end
  local tf, tr, wf, wr = x:fleet_budget(now)
  local budget = self.budget
  local spend = budget and budget:unsent() or -1
  local args = { self.prefix, self.member, format("%.0f", max(0, tf - self.told_first)),
                 format("%.0f", max(0, tr - self.told_retry)), format("%.17g", spend) }
  local asked = {}
  for i = 1, self.n do asked[i] = push(self, x, i, now, args, wants) > 0 end
  local before = c.round_trips or 0
  local r, e = c:eval(script, {}, args)
  self.round_trips = self.round_trips + max(1, (c.round_trips or before + 1) - before)
  if not r then return nil, e end
  if type(r) ~= "table" or #r ~= 4 + REPLY * self.n then return nil, "redis: the fleet script answered a malformed reply" end
  local t = core.now() -- the answer's moment: durations count from here
  self.members = tonumber(r[1]) or 1
  self.told_first, self.told_retry = tf, tr
  -- the others' share of the fleet's retry budget window (this member counts its own)
  x:fleet_budget_others((tonumber(r[2]) or 0) - wf, (tonumber(r[3]) or 0) - wr)
  if budget then budget:exchanged(spend, tonumber(r[4])) end
  for i = 1, self.n do
    local w = wants[i]
    pull(self, x, i, t, r, 5 + REPLY * (i - 1), w and (asked[i] or w == "expired"))
  end
  if c.keepalive then c:keepalive() end
  if ngx then self.conn = nil end -- a cosocket belongs to the request that made it; the pool keeps it
  return true
end

-- When this member wants its next exchange (for an executor's sleep).
function Fleet:next_at(x, now, active)
  local due = x:fleet_due(now)
  if active and self.last_sync + PULL_EVERY < due then due = self.last_sync + PULL_EVERY end
  return due
end

-- Runs an exchange when one is due: a request wants a lease, or (active:
-- the executor has work) the last exchange is PULL_EVERY s old.
-- due_only: only what is due now (a lease wanted, an event to tell), no
-- periodic pull; force: an exchange now whatever is due.
function Fleet:tick(x, now, active, due_only, force)
  if self.syncing then return end
  if not self.member then self.member = member_name() end
  self.x = x -- for flush
  -- spend that took this member past the budget is told at once: the others stop too
  if self.budget and self.budget:urgent() then force = true end
  local due = x:fleet_due(now)
  if not force and due > now and (due_only or not (active and now - self.last_sync >= PULL_EVERY)) then return end
  local wants = {}
  for i = 1, self.n do
    local v = x:fleet_view(i, now)
    if v.on and v.wanted_at > 0 and v.retry_at <= now then wants[i] = true end
    -- leasing starts at the first exchange, and again once Redis is back (the fallback may have turned it off)
    if not v.on and (self.up or not self.ever_up) then wants[i] = true end
  end
  self.syncing = true
  self.last_sync = now
  if not self.up and now < self.next_try then
    if self.ever_up then local_grants(self, x, now, wants) end
    self.syncing = false
    return
  end
  local ok, r, err = pcall(exchange, self, x, now, wants)
  local took = core.now() - now
  self.syncing = false
  if ok and r then
    local was_down = self.ever_up and not self.up
    self.up, self.ever_up, self.backoff = true, true, BACKOFF_MIN
    if was_down then
      -- back from a fallback: the leases the local buckets granted give way to the fleet's
      local back = {}
      for i = 1, self.n do
        if self.lease_src[i] == "local" then back[i] = true end
      end
      if next(back) then
        self.syncing = true
        local ok2, r2, err2 = pcall(exchange, self, x, core.now(), back)
        self.syncing = false
        if not (ok2 and r2) then went_down(self, x, core.now(), ok2 and err2 or tostring(r2), 0) end
      end
    end
    return
  end
  went_down(self, x, now, ok and err or tostring(r), took)
  if self.ever_up then local_grants(self, x, now, wants) end
end

-- For status(): the fleet's view brought up to date (an exchange now).
function Fleet:refresh(x, now)
  self:tick(x, now, true, false, true)
end

-- Redis as this member sees it.
function Fleet:status()
  return { up = self.up, url = self.display, members = self.members, round_trips = self.round_trips,
           fallbacks = self.fallbacks, errors = self.errors, last_error = self.last_error }
end

-- The fleet's spend before this member's first exchange (budget.usd): one GET,
-- once, so that a new member (a host started, a CLI run resumed) sends nothing
-- while the fleet's budget is spent already; its exchanges keep it current after.
-- Redis not answering: the member goes by its own spend until an exchange works.
function Fleet:first_spend()
  local function get()
    local c, err = self.conn
    if not c then
      c, err = redis.connect(private[self])
      if not c then return nil, err end
    end
    local v = c:call("GET", self.prefix .. ":spent")
    self.round_trips = self.round_trips + 1
    if ngx then c:keepalive() else self.conn = c end
    return tonumber(v)
  end
  local ok, total = pcall(get)
  if ok and total then self.budget:exchanged(0, total) end
end

-- Tells the fleet this member's spend not told yet (a client closing: a CLI run
-- ending), outside nginx, where the exchange would need a cosocket phase.
function Fleet:flush()
  if self.budget and self.budget:unsent() > 0 and self.x and not ngx then
    self:tick(self.x, core.now(), false, false, true)
  end
end

function Fleet:close()
  if self.conn then
    self.conn:close()
    self.conn = nil
  end
end

_M.SCRIPT = SCRIPT
_M.PULL_EVERY = PULL_EVERY
return _M
