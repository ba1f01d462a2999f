-- llmrelay.redis - a small Redis client for the fleet state: the URL/options,
-- one connection (AUTH, SELECT, TLS), calls, and scripts run by EVALSHA.
--
--   local redis = require "llmrelay.redis"
--   local o, err = redis.options("redis://user:pw@127.0.0.1:6379/2")   -- or a table
--   local c, err, kind = redis.connect(o)
--   c:call("SET", "k", "v")       -> reply | nil, err, kind
--   c:eval(redis.script(src), keys, args) -> reply | nil, err, kind
--   c:keepalive(); c:close(); c.round_trips
--
-- Replies: bulk and simple strings -> strings ("+OK" -> true), integers ->
-- integers, arrays -> tables, nil bulk/array -> redis.null, an error inside an
-- array -> { false, message }. Failures are nil, err, kind: "reply" (Redis
-- answered an error, err is its text verbatim, e.g. "NOSCRIPT ..."; the
-- connection stays usable), "timeout" or "io" (err starts with "redis: "; the
-- connection is closed). No error ever holds the password.
--
-- Two transports, one API: in OpenResty (ngx.socket.tcp exists) a cosocket,
-- elsewhere the core's blocking socket where connect, the TLS handshake and
-- each call (write and read together) are bounded by o.timeout.

local core = require "llmrelay.core"

local M = {}
M.null = core.redis_null   -- a NULL light userdata: equal to ngx.null and cjson.null

local DEFAULT_TIMEOUT = 0.05
local DEFAULT_PREFIX = "llmrelay"
local TABLE_KEYS = { url = true, timeout = true, password_env = true, prefix = true, ca_file = true, verify = true }

-- ---- options -----------------------------------------------------------

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function bad(msg)
  return nil, "redis: " .. msg
end

-- Parses a redis:// or rediss:// URL into o (fields host, port, db, user,
-- password, tls). nil, err: err never holds what stood in the password's place.
local function parse_url(url, o)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return bad("url must look like redis://[user:password@]host:port[/db]") end
  scheme = scheme:lower()
  if scheme ~= "redis" and scheme ~= "rediss" then
    return bad("url scheme must be redis:// or rediss:// (got " .. scheme .. "://)")
  end
  o.tls = scheme == "rediss"
  local auth, hostpart = rest:match("^(.*)@([^@]*)$")
  hostpart = hostpart or rest
  if auth then
    local user, password = auth:match("^([^:]*):(.*)$")
    if not user then user = auth end
    if user ~= "" then o.user = unescape(user) end
    if password and password ~= "" then o.password = unescape(password) end
    if o.user and not o.password then return bad("url names user " .. o.user .. " but no password") end
  end
  local hostport, path = hostpart:match("^([^/?#]*)(.*)$")
  local host, rest = hostport:match("^%[([^%]]+)%](.*)$")
  if not host then host, rest = hostport:match("^([^:]*)(.*)$") end
  if host == "" then return bad("url has no host") end
  local port = 6379
  if rest ~= "" then
    port = tonumber(rest:match("^:(%d+)$"))
    if not port or port < 1 or port > 65535 then return bad("port must be 1..65535") end
  end
  o.host, o.port = host, port
  o.db = 0
  if path ~= "" and path ~= "/" then
    local db = path:match("^/(%d+)$")
    if not db or tonumber(db) > 2147483647 then return bad("db (the url's /path) must be a number 0..2147483647") end
    o.db = tonumber(db)
  end
  return o
end

-- The URL with the password replaced by "***".
local function display(o)
  local auth = ""
  if o.user or o.password then
    auth = (o.user or "") .. (o.password and ":***" or "") .. "@"
  end
  local host = o.host:find(":", 1, true) and "[" .. o.host .. "]" or o.host
  return (o.tls and "rediss://" or "redis://") .. auth .. host .. ":" .. o.port ..
    (o.db ~= 0 and "/" .. o.db or "")
end

-- v: a URL string or a table { url =, timeout =, password_env =, prefix =,
-- ca_file =, verify = }. -> options | nil, err (naming the field).
function M.options(v)
  local t = v
  if type(v) == "string" then
    t = { url = v }
  elseif type(v) ~= "table" then
    return bad("must be a URL string or a table with url")
  end
  for k in pairs(t) do
    if not TABLE_KEYS[k] then return bad("unknown field " .. tostring(k)) end
  end
  if type(t.url) ~= "string" then return bad("url must be a string") end
  local o, err = parse_url(t.url, {})
  if not o then return nil, err end
  if t.timeout ~= nil and (type(t.timeout) ~= "number" or not (t.timeout > 0 and t.timeout <= 60)) then
    return bad("timeout must be a number of seconds above 0 and at most 60")
  end
  o.timeout = t.timeout or DEFAULT_TIMEOUT
  if t.prefix ~= nil and (type(t.prefix) ~= "string" or not t.prefix:match("^[%w_.:-]+$")) then
    return bad("prefix must be a non-empty string of letters, digits and _ . : -")
  end
  o.prefix = t.prefix or DEFAULT_PREFIX
  if t.password_env ~= nil then
    if type(t.password_env) ~= "string" or t.password_env == "" then
      return bad("password_env must be the name of an environment variable")
    end
    if o.password then return bad("give the password in url or in password_env, not both") end
    local p = os.getenv(t.password_env)
    if not p or p == "" then return bad("password_env " .. t.password_env .. " is not set") end
    o.password = p
  end
  if t.verify ~= nil and type(t.verify) ~= "boolean" then return bad("verify must be a boolean") end
  o.verify = t.verify ~= false
  if t.ca_file ~= nil then
    if type(t.ca_file) ~= "string" or t.ca_file == "" then return bad("ca_file must be a file name") end
    if not o.tls then return bad("ca_file needs a rediss:// url") end
    o.ca_file = t.ca_file
  end
  o.display = display(o)
  return o
end

-- ---- scripts -------------------------------------------------------------

local Script = {}
Script.__index = Script

-- A script object: its source, and the SHA1 Redis gave for it once loaded
-- (the same on every server, so one object serves every connection).
function M.script(source)
  if type(source) ~= "string" or source == "" then error("redis.script: source must be a non-empty string", 2) end
  return setmetatable({ source = source }, Script)
end

-- ---- connections -----------------------------------------------------------

local Conn = {}
Conn.__index = Conn

local function io_error(err)
  return "redis: " .. err
end

-- conn:call(...) for the core's socket
local function plain_call(self, ...)
  local h = self.h
  if not h then return nil, "redis: the connection is closed", "io" end
  self.round_trips = self.round_trips + 1
  local r, err, kind = h:call(...)
  if r == nil and kind ~= "reply" then
    self.h = nil
    return nil, io_error(err), kind
  end
  return r, err, kind
end

local function plain_open(o)
  local h, err, kind = core.redis_connect(o.host, o.port, o.timeout, o.tls, o.verify, o.ca_file)
  if not h then return nil, io_error(err), kind end
  return setmetatable({ h = h, round_trips = 0, call = plain_call }, Conn)
end

-- AUTH and SELECT on a fresh connection; closes it when they fail.
local function handshake(c, o)
  local r, err, kind
  if o.password then
    if o.user then
      r, err, kind = c:call("AUTH", o.user, o.password)
    else
      r, err, kind = c:call("AUTH", o.password)
    end
    if not r then
      c:close()
      return nil, "redis: AUTH failed at " .. o.display .. ": " .. (kind == "reply" and err or err:gsub("^redis: ", "")), kind
    end
  end
  if o.db ~= 0 then
    r, err, kind = c:call("SELECT", o.db)
    if not r then
      c:close()
      return nil, "redis: SELECT " .. o.db .. " failed at " .. o.display .. ": " .. (kind == "reply" and err or err:gsub("^redis: ", "")), kind
    end
  end
  return c
end

function M.connect(o)
  if type(o) ~= "table" or not o.host then error("redis.connect: o must come from redis.options", 2) end
  local c, err, kind = plain_open(o)
  if not c then return nil, err, kind end
  return handshake(c, o)
end

-- EVALSHA with the script's sha; loads it first when unknown, and again once
-- when Redis answers NOSCRIPT (restarted or flushed since).
function Conn:eval(script, keys, args)
  if getmetatable(script) ~= Script then error("redis eval: script must come from redis.script", 2) end
  keys, args = keys or {}, args or {}
  local r, err, kind
  for attempt = 1, 2 do
    if not script.sha then
      r, err, kind = self:call("SCRIPT", "LOAD", script.source)
      if not r then return nil, err, kind end
      script.sha = r
    end
    local n = #keys
    local argv = { "EVALSHA", script.sha, n }
    for i = 1, n do argv[3 + i] = keys[i] end
    for i = 1, #args do argv[3 + n + i] = args[i] end
    r, err, kind = self:call((table.unpack or unpack)(argv, 1, 3 + n + #args))
    if r ~= nil or kind ~= "reply" or attempt == 2 or not err:match("^NOSCRIPT") then break end
    script.sha = nil
  end
  return r, err, kind
end

function Conn:close()
  if self.h then self.h:close() end
  self.h = nil
end

-- Plain Lua keeps its one connection: nothing to do.
function Conn:keepalive()
  return self.h ~= nil
end

return M
