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
-- Time: connect (TCP, TLS, AUTH, SELECT together), each call (its write and
-- read together) and each eval (its one to three calls together) take at most
-- o.timeout. Two transports, one API: in OpenResty (ngx.socket.tcp exists) a
-- cosocket, elsewhere the core's blocking socket (csrc/sock.c).

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

local function plain_settimeout(self, s)
  if self.h then self.h:settimeout(s) end
end

local function plain_open(o)
  local h, err, kind = core.redis_connect(o.host, o.port, o.timeout, o.tls, o.verify, o.ca_file)
  if not h then return nil, io_error(err), kind end
  return setmetatable({ h = h, timeout = o.timeout, round_trips = 0, call = plain_call, settimeout = plain_settimeout },
                      Conn)
end

-- ---- OpenResty: a cosocket, the core's codec -------------------------------

local ngx_tcp = ngx and ngx.socket and ngx.socket.tcp
local RESTY_PIECE = 16384
local KEEPALIVE_IDLE_MS, KEEPALIVE_POOL = 10000, 32
local decoders = {}   -- free decoders of this worker: one is taken per call in flight

local function ms(s)
  local v = s * 1000
  return v < 1 and 1 or v
end

-- Sends the command and reads one reply, the whole call bounded by the
-- timeout; a timeout or socket error closes the connection.
local function resty_call(self, ...)
  local sock = self.sock
  if not sock then return nil, "redis: the connection is closed", "io" end
  self.round_trips = self.round_trips + 1
  local bytes = core.resp_encode(...)
  local deadline = core.now() + self.call_timeout
  local dec = table.remove(decoders) or core.resp_decoder()
  local function fail(kind, msg)
    dec:reset()
    decoders[#decoders + 1] = dec
    sock:close()
    self.sock = nil
    return nil, "redis: " .. self.peer .. ": " .. msg, kind
  end
  sock:settimeout(ms(self.call_timeout))
  local ok, err = sock:send(bytes)
  if not ok then
    return fail(err == "timeout" and "timeout" or "io", err == "timeout" and "timed out (sending)" or "send: " .. tostring(err))
  end
  local piece = self.pending
  self.pending = nil
  while true do
    if piece then
      local state, used, r, rerr, kind = dec:feed(piece)
      if state == "done" then
        if used < #piece then self.pending = piece:sub(used + 1) end
        decoders[#decoders + 1] = dec
        return r, rerr, kind
      elseif state == "error" then
        return fail("io", "bad reply: " .. kind)
      end
    end
    local left = deadline - core.now()
    if left <= 0 then return fail("timeout", "timed out (waiting for the reply)") end
    sock:settimeout(ms(left))
    piece, err = sock:receiveany(RESTY_PIECE)
    if not piece then
      if err == "timeout" then return fail("timeout", "timed out (waiting for the reply)") end
      return fail("io", err == "closed" and "connection closed by the server" or "receive: " .. tostring(err))
    end
  end
end

-- A keep-alive pool per server, user, password, db and TLS setting: a pooled
-- connection is authenticated and SELECTed already.
local function pool_name(o)
  return "llmrelay.redis " .. o.display .. " " .. ngx.crc32_long(o.password or "") ..
    (o.tls and (o.verify and " verify" or " noverify") or "")
end

local function resty_settimeout(self, s)
  self.call_timeout = s
end

local function resty_open(o)
  local okt, sock = pcall(ngx_tcp)
  if not okt then return nil, "redis: no cosocket here (" .. tostring(sock) .. ")", "io" end
  local peer = (o.host:find(":", 1, true) and "[" .. o.host .. "]" or o.host) .. ":" .. o.port
  local t = ms(o.timeout)
  local deadline = core.now() + o.timeout   -- the connect and the handshake together
  sock:settimeouts(t, t, t)
  local ok, err = sock:connect(o.host, o.port, { pool = pool_name(o), pool_size = KEEPALIVE_POOL })
  if not ok then
    if err == "timeout" then return nil, "redis: " .. peer .. ": timed out (connecting)", "timeout" end
    return nil, "redis: " .. peer .. ": connect: " .. tostring(err), "io"
  end
  local fresh = (sock:getreusedtimes() or 0) == 0
  if o.tls and fresh then
    -- nginx checks a certificate's name with X509_check_host, which knows no
    -- IP addresses: an IP literal gets the chain verified, not the name. The
    -- CA is nginx's lua_ssl_trusted_certificate (o.ca_file is plain Lua's).
    -- pcall: lua-resty-core 0.1.25 can raise instead of returning the error.
    local name = o.host
    if o.host:match("^%d+%.%d+%.%d+%.%d+$") or o.host:find(":", 1, true) then name = nil end
    local left = deadline - core.now()
    sock:settimeout(ms(left > 0 and left or 0.001))
    local okc, session, herr = pcall(sock.sslhandshake, sock, nil, name, o.verify)
    if not okc or not session then
      sock:close()
      herr = okc and tostring(herr) or "the certificate was not accepted"
      return nil, "redis: " .. peer .. ": " .. herr .. " (TLS handshake)", herr == "timeout" and "timeout" or "io"
    end
  end
  return setmetatable({ sock = sock, peer = peer, timeout = o.timeout, call_timeout = o.timeout, round_trips = 0,
                        call = resty_call, settimeout = resty_settimeout, fresh = fresh }, Conn)
end

-- One call of an operation of several (connect's AUTH and SELECT, eval's
-- SCRIPT LOAD and EVALSHA), which all together take at most the timeout:
-- the call gets what is left of it (a moment when nothing is: it then times
-- out, and the connection is closed).
local function call_by(c, deadline, ...)
  local left = deadline - core.now()
  c:settimeout(left > 0.001 and left or 0.001)
  local r, err, kind = c:call(...)
  c:settimeout(c.timeout)
  return r, err, kind
end

-- "redis: AUTH failed at redis://:***@host:port: WRONGPASS ..." (a reply) or
-- "...: recv: Connection reset by peer" (the socket's reason, without its
-- "redis: host:port: " head: the display names the server already).
local function step_error(step, o, err, kind)
  if kind ~= "reply" then err = err:gsub("^redis: %S+: ", "") end
  return "redis: " .. step .. " failed at " .. o.display .. ": " .. err
end

-- AUTH and SELECT on a fresh connection; closes it when they fail.
local function handshake(c, o, deadline)
  local r, err, kind
  if o.password then
    if o.user then
      r, err, kind = call_by(c, deadline, "AUTH", o.user, o.password)
    else
      r, err, kind = call_by(c, deadline, "AUTH", o.password)
    end
    if not r then
      c:close()
      return nil, step_error("AUTH", o, err, kind), kind
    end
  end
  if o.db ~= 0 then
    r, err, kind = call_by(c, deadline, "SELECT", o.db)
    if not r then
      c:close()
      return nil, step_error("SELECT " .. o.db, o, err, kind), kind
    end
  end
  return c
end

-- Connects: TCP, TLS, AUTH and SELECT, all together within o.timeout.
function M.connect(o)
  if type(o) ~= "table" or not o.host then error("redis.connect: o must come from redis.options", 2) end
  local deadline = core.now() + o.timeout
  local c, err, kind
  if ngx_tcp then
    c, err, kind = resty_open(o)
    if c and not c.fresh then return c end   -- from the keep-alive pool: AUTH and SELECT done
  else
    c, err, kind = plain_open(o)
  end
  if not c then return nil, err, kind end
  return handshake(c, o, deadline)
end

-- EVALSHA with the script's sha; loads it first when unknown, and again once
-- when Redis answers NOSCRIPT (restarted or flushed since). The calls it
-- makes (one, or up to three) take at most the timeout together.
function Conn:eval(script, keys, args)
  if getmetatable(script) ~= Script then error("redis eval: script must come from redis.script", 2) end
  keys, args = keys or {}, args or {}
  local deadline = core.now() + self.timeout
  local r, err, kind
  for attempt = 1, 2 do
    if not script.sha then
      r, err, kind = call_by(self, deadline, "SCRIPT", "LOAD", script.source)
      if not r then return nil, err, kind end
      script.sha = r
    end
    local n = #keys
    local argv = { "EVALSHA", script.sha, n }
    for i = 1, n do argv[3 + i] = keys[i] end
    for i = 1, #args do argv[3 + n + i] = args[i] end
    r, err, kind = call_by(self, deadline, (table.unpack or unpack)(argv, 1, 3 + n + #args))
    if r ~= nil or kind ~= "reply" or attempt == 2 or not err:match("^NOSCRIPT") then break end
    script.sha = nil
  end
  return r, err, kind
end

function Conn:close()
  if self.h then self.h:close() end
  if self.sock then self.sock:close() end
  self.h, self.sock = nil, nil
end

-- OpenResty: the connection goes back to the worker's keep-alive pool and
-- this object is closed. Plain Lua keeps its one connection: nothing to do.
function Conn:keepalive()
  if self.sock then
    local sock = self.sock
    self.sock = nil
    if self.pending then   -- bytes nobody asked for: out of step, not pooled
      sock:close()
      return nil, "redis: unexpected bytes from the server"
    end
    return sock:setkeepalive(KEEPALIVE_IDLE_MS, KEEPALIVE_POOL)
  end
  return self.h ~= nil
end

return M
