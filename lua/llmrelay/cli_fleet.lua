-- What `llmrelay batch` needs to run as one of a fleet: `--shard K/N` (which
-- input lines this process takes) and `--redis URL` (kept out of everything
-- the CLI prints: the URL holds the password).
-- Lua 5.1 / LuaJIT / 5.4.

local core = require "llmrelay.core"

local _M = {}

local type, tostring, tonumber, ipairs, setmetatable = type, tostring, tonumber, ipairs, setmetatable
local find, sub, format, gsub, match, char = string.find, string.sub, string.format, string.gsub,
  string.match, string.char

_M.MAX_SHARDS = 10000
_M.REDIS_ENV = "LLMRELAY_REDIS"

---------------------------------------------------------------------------
-- Shards

local Shard = {}
Shard.__index = Shard

-- The shard (1..n) a line belongs to: by its custom_id when it names one,
-- else by its line number, mod n; remainder 0 is shard n. The custom_id's
-- number is the 64-bit FNV-1a of the 16 hex digits of its own 64-bit FNV-1a:
-- FNV's low bits depend only on the low bits of the bytes (ids of letters
-- with the same last bit would all fall in one shard of 2), hashing the digest
-- again spreads them. core.hash is C and the remainder is taken a hex digit at
-- a time in exact arithmetic, so every host and Lua (5.4, LuaJIT) splits a
-- file alike.
local function shard_of(n, custom_id, lineno)
  local r = 0
  if custom_id then
    local hex = core.hash(core.hash(custom_id))
    for i = 1, 16 do r = (r * 16 + tonumber(sub(hex, i, i), 16)) % n end
  else
    r = lineno % n
  end
  return r == 0 and n or r
end
_M.shard_of = shard_of

-- This run's shards as the user numbers them: 0/N says 0-based numbering.
function Shard:name(k)
  if self.zero_based then k = k % self.n end
  return format("%d/%d", k, self.n)
end

-- true when the line (its custom_id, or its line number when it names none) is this shard's.
function Shard:owns(custom_id, lineno)
  return shard_of(self.n, custom_id, lineno) == self.k
end

-- Why an output holding the answer to another shard's line cannot be this shard's.
function Shard:foreign(path, custom_id, lineno)
  local what = custom_id and format("custom_id %q", custom_id) or format("input line %d", lineno)
  return format("%s holds the answer to %s, which is shard %s's, not %s's: it was written with "
    .. "another --shard or none (each shard needs its own output file); refusing to resume into it",
    path, what, self:name(shard_of(self.n, custom_id, lineno)), self:name(self.k))
end

-- "K/N" -> a shard ({k = 1..N, n = N, label = the text}), or nil and a message.
-- K is 1..N ("shard 1 of 4"); 0 means N, so 0..N-1 numbering splits the same way.
function _M.parse(text)
  local ks, ns = match(text, "^(%d+)/(%d+)$")
  local k, n = tonumber(ks), tonumber(ns)
  if not k then
    return nil, format("batch: --shard must be K/N, two whole numbers (this process takes shard K "
      .. "of N), e.g. 1/4 (got '%s')", text)
  end
  if n < 1 or n > _M.MAX_SHARDS then
    return nil, format("batch: --shard %s: N must be from 1 to %d", text, _M.MAX_SHARDS)
  end
  if k > n then
    return nil, format("batch: --shard %s: K must be from 1 to N (or 0, meaning N), here 1 to %d", text, n)
  end
  return setmetatable({ k = k == 0 and n or k, n = n, zero_based = k == 0, label = text }, Shard)
end

---------------------------------------------------------------------------
-- Redis URL

-- Every URL's userinfo in s masked: scheme://user:***@host, scheme://***@host.
-- The userinfo runs to the last "@" before a blank or a quote, so a password
-- holding "@" or "/" is masked whole.
function _M.mask(s)
  return (gsub(s, "(%a[%w+.-]*://)([^%s'\"<>]*)@", function(scheme, userinfo)
    local user = match(userinfo, "^([^:]*):")
    return scheme .. (user and (user .. ":***") or "***") .. "@"
  end))
end

local function unescape(s)
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- The secrets a `redis` config value holds (a URL's password as written and
-- percent-decoded; the value of password_env), for the scrubber.
function _M.redis_secrets(redis, getenv)
  local out = {}
  local url = type(redis) == "table" and redis.url or redis
  if type(url) == "string" then
    local userinfo = match(url, "^%a[%w+.-]*://(.*)@")
    if userinfo then
      local pw = match(userinfo, "^[^:]*:(.*)$") or userinfo
      if pw ~= "" then
        out[#out + 1] = pw
        local plain = unescape(pw)
        if plain ~= pw then out[#out + 1] = plain end
      end
    end
  end
  local env = type(redis) == "table" and redis.password_env
  if type(env) == "string" and env ~= "" then
    local v = getenv(env)
    if v and v ~= "" then out[#out + 1] = v end
  end
  return out
end

-- The `redis` a run uses, and where it comes from: --redis, else
-- $LLMRELAY_REDIS, else the config's own.
function _M.redis_of(o, cfg, getenv)
  if o.redis then return o.redis, "--redis" end
  local env = getenv(_M.REDIS_ENV)
  if env and env ~= "" then return env, _M.REDIS_ENV end
  return cfg.redis, nil
end

---------------------------------------------------------------------------
-- What the progress line and the summary say about Redis (client:status().redis)

-- " redis down" for the progress line while the client runs on local state, else "".
function _M.progress_note(st)
  local r = type(st) == "table" and st.redis
  if type(r) == "table" and r.up == false then return "  redis down" end
  return ""
end

-- The summary's Redis line, or nil when the client keeps no fleet state.
function _M.summary_line(st)
  local r = type(st) == "table" and st.redis
  if type(r) ~= "table" then return nil end
  local parts = {}
  for _, f in ipairs { "round_trips", "fallbacks", "errors" } do
    if type(r[f]) == "number" then parts[#parts + 1] = format("%s %d", (gsub(f, "_", " ")), r[f]) end
  end
  local line = format("  redis %s: %s%s", _M.mask(tostring(r.url or "")), r.up and "up" or "down",
    #parts > 0 and (", " .. table.concat(parts, ", ")) or "")
  if not r.up and type(r.last_error) == "string" and find(r.last_error, "%S") then
    line = line .. "; last error: " .. _M.mask(r.last_error)
  end
  return line
end

return _M
