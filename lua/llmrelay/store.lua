-- llmrelay.store: endpoint state that every process of a pool agrees on
-- (the workers of one nginx today; the hosts of a fleet through the next
-- backend). An executor talks to a store through four methods; what the
-- numbers mean (when a breaker opens, whether an attempt may go, how a shared
-- bucket refills) is decided in C (csrc/shared.c, core.shared_bucket), the
-- same rules as within one process. A store only moves numbers between its
-- backend and the worker's relay. No ngx here: any executor may use it.
--
-- The store interface (what an executor calls):
--   store:import(relay, now, force)   bring the relay in line with the backend
--                                     (at most every IMPORT_EVERY s unless force)
--   store:admit(relay, i, id, tokens, now, timeout) -> true, probe | false, retry_at
--                                     may this process send attempt `id` to endpoint i?
--   store:release(relay, i, verdict, probe, status, now)
--                                     the attempt ended ("success" "failure" "neutral";
--                                     status 0 when no answer came)
--   store:view(i) -> { fails, open_until, in_flight, throttled_until }   for status()
--
-- The backend interface (what a store calls; a lua_shared_dict has exactly
-- these methods, a second backend implements the same five):
--   get(key) -> value | nil
--   set(key, value, ttl?)             ttl in seconds, absent or 0: none
--   add(key, value, ttl?) -> ok       only when the key is absent (a lock)
--   incr(key, delta, init?) -> new | nil   atomic; a missing key starts at init
--                                     (nil: fail); nil when the backend is full
--   delete(key)
--
-- Keys are "llmrelay:<pool>:<endpoint>:<field>"; fields per endpoint:
--   fails      consecutive failures, all processes together (incr)
--   open       the breaker is open until then (core.now() time: monotonic, one clock for the host)
--   cool       the cool-down behind `open`
--   probe      a half-open probe is out (add: one process holds it)
--   thr        throttled until then (a server asked for a pause)
--   inflight   attempts in flight, all processes together (incr)
--   proven     some process had an answer from it
--   rq, tk     configured rpm / tpm buckets: units taken since `t0`

local core = require "llmrelay.core"
local floor, huge = math.floor, math.huge

local _M = {}
local Store = {}
Store.__index = Store

local FIELDS = { "fails", "open", "cool", "probe", "thr", "inflight", "proven", "rq", "tk", "t0" }
-- how often a process re-reads the backend before deciding (seconds)
local IMPORT_EVERY = 0.002

-- backend: the five methods above; pool: the namespace (config.name);
-- endpoints: the normalized endpoints (name, rpm, tpm); owner: what a held
-- probe lock says (a process id).
function _M.new(backend, pool, endpoints, owner)
  local keys = {}
  for i, ep in ipairs(endpoints) do
    local k, base = {}, "llmrelay:" .. pool .. ":" .. ep.name .. ":"
    for _, f in ipairs(FIELDS) do k[f] = base .. f end
    k.rpm, k.tpm = ep.rpm or 0, ep.tpm or 0
    keys[i] = k
  end
  return setmetatable({ backend = backend, keys = keys, n = #endpoints, imported_at = -1, owner = owner,
                        proven = {} }, Store)
end

-- The store a configuration names (nil when it names none), or nil, err when
-- its backend is not there. A second backend is added here, not in the executors.
function _M.open(cfg)
  if cfg.shared_dict then
    local backend, owner = require("llmrelay.resty.shared").backend(cfg.shared_dict)
    if not backend then return nil, owner end
    return _M.new(backend, cfg.name, cfg.endpoints, owner)
  end
  return nil
end

local function num(v)
  return v or 0
end

-- Brings the relay in line with the backend (at most every IMPORT_EVERY s).
function Store:import(relay, now, force)
  if not force and now - self.imported_at < IMPORT_EVERY then return end
  self.imported_at = now
  local d = self.backend
  for i = 1, self.n do
    local k = self.keys[i]
    relay:import(i, now, num(d:get(k.fails)), num(d:get(k.open)), num(d:get(k.cool)), num(d:get(k.thr)), 0,
                 self.proven[i] or d:get(k.proven))
  end
end

-- A configured rpm/tpm bucket shared by the workers, from incr alone; the
-- arithmetic and the bucket's shape are C's (lr_shared_bucket, lr_limiter_shape).
local function bucket_take(d, key, t0key, per_minute, need, now)
  local t0 = d:get(t0key)
  if not t0 then
    d:add(t0key, now)
    t0 = d:get(t0key) or now
  end
  local used = d:incr(key, need, per_minute / 60 * (now - t0)) -- a new bucket starts full
  if not used then return true end -- the backend is full: fail open, the relay's own limiter still holds
  local ok, excess, at = core.shared_bucket(per_minute, t0, used, need, now)
  if excess > 0 then d:incr(key, excess) end
  if ok then return true end
  d:incr(key, -need)
  return false, at
end

-- May this worker send the attempt `id` the relay chose for endpoint i?
-- -> true | false, retry_at
function Store:admit(relay, i, id, tokens, now, timeout)
  local d, k = self.backend, self.keys[i]
  local probe = relay:is_probe(id)
  -- the probe lock lasts as long as the probe may (a worker that dies holding it frees it then)
  if probe and not d:add(k.probe, self.owner, math.max(1, timeout or 1)) then
    -- another worker probes it: when to look again is the core's answer for
    -- an endpoint that only another process's release frees (all of it busy)
    local _, at = relay:admit(i, now, true, num(d:get(k.fails)), num(d:get(k.open)), num(d:get(k.cool)),
                              num(d:get(k.thr)), huge, self.proven[i] or d:get(k.proven))
    return false, at
  end
  local inflight = d:incr(k.inflight, 1, 0) or 1
  local ok, at = relay:admit(i, now, probe, num(d:get(k.fails)), num(d:get(k.open)), num(d:get(k.cool)),
                             num(d:get(k.thr)), inflight, self.proven[i] or d:get(k.proven))
  if ok and k.rpm > 0 then
    ok, at = bucket_take(d, k.rq, k.t0, k.rpm, 1, now)
  end
  if ok and k.tpm > 0 then
    ok, at = bucket_take(d, k.tk, k.t0, k.tpm, tokens, now)
    if not ok and k.rpm > 0 then d:incr(k.rq, -1) end
  end
  if ok then return true, probe end
  d:incr(k.inflight, -1, 0)
  if probe then d:delete(k.probe) end
  return false, at
end

-- The attempt to endpoint i ended with `verdict` ("success" "failure"
-- "neutral"); status 0 when no answer came.
function Store:release(relay, i, verdict, probe, status, now)
  local d, k = self.backend, self.keys[i]
  d:incr(k.inflight, -1, 0)
  if probe then d:delete(k.probe) end
  if status > 0 and not self.proven[i] then
    self.proven[i] = true
    d:set(k.proven, true)
  end
  if verdict == "failure" then
    local n = d:incr(k.fails, 1, 0) or 1
    relay:import(i, now, n, num(d:get(k.open)), num(d:get(k.cool)), num(d:get(k.thr)), 0, self.proven[i])
  elseif verdict == "success" then
    if num(d:get(k.fails)) ~= 0 then d:set(k.fails, 0) end
    if probe then d:delete(k.open) end -- the probe closed it, for every worker
  end
  local _, open_until, cool, thr, state = relay:export(i, now)
  if state == "open" and open_until > num(d:get(k.open)) then
    d:set(k.open, open_until)
    d:set(k.cool, cool)
  end
  if thr > num(d:get(k.thr)) then d:set(k.thr, thr, floor(thr - now) + 2) end
  self.imported_at = -1 -- look again before the next decision
end

-- For status: the backend's view of endpoint i.
function Store:view(i)
  local d, k = self.backend, self.keys[i]
  return { fails = num(d:get(k.fails)), open_until = d:get(k.open), in_flight = num(d:get(k.inflight)),
           throttled_until = d:get(k.thr) }
end

return _M
