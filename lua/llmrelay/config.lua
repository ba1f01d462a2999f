-- Validates the table given to llmrelay.new and returns the normalized copy the C core
-- reads. Every table rejects unknown keys, so a typo never silently becomes a default.
-- Messages name the field path and never echo an api key, a header value or a URL.

local _M = {}

local type, pairs, ipairs, tostring, error, pcall, setmetatable, getmetatable =
  type, pairs, ipairs, tostring, error, pcall, setmetatable, getmetatable
local floor, huge, min = math.floor, math.huge, math.min
local format, find, sub, lower, byte, gsub, match =
  string.format, string.find, string.sub, string.lower, string.byte, string.gsub, string.match
local sort = table.sort
local errors = require "llmrelay.errors"

local MAX_ENDPOINTS = 64

-- Raised inside validation, turned into one error() at the caller's level in validate().
local Failure = {}

local function fail(msg)
  error(setmetatable({ msg = msg }, Failure), 0)
end

local function fmt_num(x)
  if x ~= x then return "nan" end
  if x == huge then return "inf" end
  if x == -huge then return "-inf" end
  if x == floor(x) and x > -1e15 and x < 1e15 then return format("%d", x) end
  return format("%.14g", x)
end

local function got(v)
  if type(v) == "number" then return fmt_num(v) end
  if v == "" then return "empty string" end
  return type(v)
end

-- For names and keys the user typed: quoted, control bytes escaped, long ones cut.
local function show(s)
  s = tostring(s)
  if #s > 48 then s = sub(s, 1, 45) .. "..." end
  return '"' .. gsub(s, '[%c"\\]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return format("\\%03d", byte(c))
  end) .. '"'
end

local function field(path, key)
  if path == "" then return key end
  return path .. "." .. key
end

local function finite(x)
  return x == x and x ~= huge and x ~= -huge
end

-- spec = { desc = "a positive number", int = bool, ok = function(x) -> bool }
local function number(v, path, spec, default)
  if v == nil then return default end
  if type(v) ~= "number" or not finite(v) or (spec.int and v ~= floor(v)) or not spec.ok(v) then
    fail(path .. " must be " .. spec.desc .. " (got " .. got(v) .. ")"
         .. (spec.range and ("; the range is " .. spec.range) or ""))
  end
  if spec.int then return floor(v) end
  return v
end

local POSITIVE = { desc = "a positive number", ok = function(x) return x > 0 end }
local NON_NEGATIVE = { desc = "a number >= 0", ok = function(x) return x >= 0 end }

-- Ranges the C core can hold (csrc/l_common.c checks the same numbers): counts
-- land in C ints, concurrency sizes arrays, seconds become integer milliseconds.
local MAX_COUNT, MAX_CONCURRENCY, MAX_SECONDS, MAX_WEIGHT = 1000000, 65536, 1000000, 1000000
local MAX_RESPONSE_BYTES = 1024 * 1024 * 1024
local MAX_HEADERS, MAX_MODELS = 36, 32 -- per endpoint; llmrelay sets 4 headers of its own
_M.MAX_SECONDS = MAX_SECONDS -- per-call timeouts (init.lua) share the range

-- Numbers with an upper bound; spec.range is said after the value, so every
-- refusal names the whole range.
local function int_range(desc, lo, hi, range)
  return { desc = desc, int = true, range = range or (lo .. " to " .. hi),
           ok = function(x) return x >= lo and x <= hi end }
end

local function up_to(desc, hi, unit, zero_ok)
  return { desc = desc, range = (zero_ok and "0" or "above 0") .. " to " .. hi .. unit,
           ok = function(x) return (x > 0 or (zero_ok and x == 0)) and x <= hi end }
end

local COUNT = int_range("a positive integer", 1, MAX_COUNT)
local CONCURRENCY = int_range("a positive integer", 1, MAX_CONCURRENCY)
local SECONDS = up_to("a positive number", MAX_SECONDS, " seconds")
local SECONDS_OR_ZERO = up_to("a number >= 0", MAX_SECONDS, " seconds", true)
local WEIGHT = up_to("a positive number", MAX_WEIGHT, "")

-- An upper bound paired with a lower one (max_delay, max_cooldown): when left out it is
-- the default, or the lower bound if that is larger, so one setting never contradicts a default.
local function cap(v, path, lower_value, lower_path, default)
  local spec = { desc = "a number >= " .. lower_path .. " (" .. fmt_num(lower_value) .. ")",
                 range = fmt_num(lower_value) .. " to " .. MAX_SECONDS .. " seconds",
                 ok = function(x) return x >= lower_value and x <= MAX_SECONDS end }
  return number(v, path, spec, lower_value > default and lower_value or default)
end

local function boolean(v, path, default)
  if v == nil then return default end
  if type(v) ~= "boolean" then fail(path .. " must be a boolean (got " .. got(v) .. ")") end
  return v
end

local function table_or_nil(v, path)
  if v ~= nil and type(v) ~= "table" then
    fail(path .. " must be a table (got " .. got(v) .. ")")
  end
  return v or {}
end

-- Optimal string alignment distance: Levenshtein plus adjacent transpositions,
-- so "retyr" is one edit from "retry".
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = (byte(a, i) == byte(b, j)) and 0 or 1
      local v = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and byte(a, i) == byte(b, j - 1) and byte(a, i - 1) == byte(b, j) then
        v = min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

local function check_keys(t, allowed, path)
  local unknown = {}
  for k in pairs(t) do
    local known = false
    for _, name in ipairs(allowed) do
      if k == name then known = true break end
    end
    if not known then unknown[#unknown + 1] = k end
  end
  if #unknown == 0 then return end
  sort(unknown, function(a, b) return tostring(a) < tostring(b) end)
  local k = unknown[1]
  if type(k) ~= "string" then
    fail("unknown field " .. path .. "[" .. tostring(k)
         .. "] (expected named fields)")
  end
  local best, best_d = nil, 3
  for _, name in ipairs(allowed) do
    local dist = distance(lower(k), name)
    if dist < best_d then best, best_d = name, dist end
  end
  local msg = "unknown field '" .. field(path, (gsub(k, "%c", "?"))) .. "'"
  if best then msg = msg .. " (did you mean '" .. field(path, best) .. "'?)" end
  fail(msg)
end

-- Arrays must be exactly 1..n: a hole or a named key is a mistake, not something to skip.
local function array_length(t, path)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k ~= floor(k) then
      fail(path .. " must be an array (unexpected key "
           .. (type(k) == "string" and show(k) or got(k)) .. ")")
    end
    n = n + 1
  end
  for i = 1, n do
    if t[i] == nil then fail(path .. " must be an array without holes (missing [" .. i .. "])") end
  end
  return n
end

local function non_empty_string(v, path)
  if type(v) ~= "string" or v == "" then
    fail(path .. " must be a non-empty string (got " .. got(v) .. ")")
  end
  return v
end

local function no_control(v, path, what)
  if find(v, "%c") then fail(path .. " must not contain " .. (what or "control characters")) end
  return v
end

local function parse_base_url(v, path)
  non_empty_string(v, path)
  if find(v, "[%c%s]") then fail(path .. " must not contain whitespace or control characters") end
  local scheme, rest = match(v, "^(%a[%w+.-]*)://(.*)$")
  scheme = scheme and lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then
    fail(path .. " must start with http:// or https://")
  end
  -- The request URL is base_url .. "/chat/completions": a query or fragment would break it.
  if find(rest, "[?#]") then fail(path .. " must not contain a query (?) or fragment (#)") end
  local authority = match(rest, "^[^/]*")
  if find(authority, "@", 1, true) then
    fail(path .. " must not contain credentials (user:password@); use api_key")
  end
  local host, port
  if sub(authority, 1, 1) == "[" then
    host, port = match(authority, "^%[([%x:%.]+)%](.*)$")
  else
    host, port = match(authority, "^([%w%.%-_]+)(.*)$")
  end
  local p = port and (port == "" and 80 or tonumber(match(port, "^:(%d+)$")))
  if not p or p < 1 or p > 65535 then fail(path .. " must have a valid host[:port]") end
  local url = scheme .. "://" .. gsub(rest, "/+$", "")
  return url, lower(host) .. port
end

local RESERVED_HEADERS = {
  authorization = true, ["content-type"] = true, ["content-length"] = true, host = true,
  ["transfer-encoding"] = true, connection = true, expect = true,
}

local function parse_headers(v, path)
  local list = {}
  for name, value in pairs(table_or_nil(v, path)) do
    if type(name) ~= "string" then
      fail(path .. " must map header names to values (got a " .. type(name) .. " key)")
    end
    local hpath = path .. "[" .. show(name) .. "]"
    if not find(name, "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$") then
      fail(hpath .. " is not a valid header name")
    end
    if RESERVED_HEADERS[lower(name)] then fail(hpath .. " is reserved (set by llmrelay)") end
    if type(value) == "number" then
      if not finite(value) then fail(hpath .. " must be a finite number or a string") end
      value = fmt_num(value)
    elseif type(value) ~= "string" then
      fail(hpath .. " must be a string (got " .. got(value) .. ")")
    end
    -- Header values may carry credentials: say what is wrong, never what they are.
    if find(value, "[\r\n]") then fail(hpath .. " must not contain CR or LF") end
    if find(value, "%z") then fail(hpath .. " must not contain NUL") end
    if find(gsub(value, "\t", ""), "%c") then fail(hpath .. " must not contain control characters") end
    list[#list + 1] = { name, value }
  end
  if #list > MAX_HEADERS then fail(path .. ": at most " .. MAX_HEADERS .. " headers (got " .. #list .. ")") end
  sort(list, function(a, b) return lower(a[1]) < lower(b[1]) end)
  for i = 2, #list do
    if lower(list[i][1]) == lower(list[i - 1][1]) then
      fail(path .. " sets " .. show(list[i - 1][1]) .. " and " .. show(list[i][1])
           .. " (header names are case-insensitive)")
    end
  end
  return list
end

local function parse_models(v, path)
  if v == nil then return {} end
  if type(v) ~= "table" then fail(path .. " must be an array of strings (got " .. got(v) .. ")") end
  local n = array_length(v, path)
  if n == 0 then fail(path .. " must not be empty (leave it out to serve every model)") end
  if n > MAX_MODELS then fail(path .. ": at most " .. MAX_MODELS .. " models (got " .. n .. ")") end
  local models = {}
  for i = 1, n do models[i] = non_empty_string(v[i], path .. "[" .. i .. "]") end
  return models
end

-- A credential is scrubbed out of everything a server sends back; a short one
-- would also match ordinary text (a key "chat" in "chat.completion").
local function long_enough(v, what, hint)
  if #v < errors.MIN_SECRET then
    fail(what .. " is too short to keep secret: a credential must be at least " .. errors.MIN_SECRET
         .. " characters (" .. hint .. ")")
  end
  return v
end

local function parse_api_key(ep, path)
  local key, env = ep.api_key, ep.api_key_env
  if key ~= nil and env ~= nil then
    fail(path .. " must not set both api_key and api_key_env")
  end
  if key ~= nil then
    non_empty_string(key, path .. ".api_key")
    no_control(key, path .. ".api_key")
    return long_enough(key, path .. ".api_key", "omit api_key for a server that needs none")
  end
  if env == nil then return nil end
  local epath = path .. ".api_key_env"
  non_empty_string(env, epath)
  if find(env, "[%c=]") then fail(epath .. " is not a valid environment variable name") end
  local value = os.getenv(env)
  if value == nil or value == "" then
    fail(epath .. ": environment variable " .. env .. " is not set or empty")
  end
  if find(value, "%c") then
    fail(epath .. ": environment variable " .. env .. " must not contain control characters")
  end
  return long_enough(value, epath .. ": environment variable " .. env,
                     "unset it, or omit api_key_env, for a server that needs none")
end

-- Headers whose values are credentials (lowercase names), besides any name
-- ending in -key, -token or -secret and those listed in secret_headers.
local CREDENTIAL_HEADERS = { authorization = true, ["proxy-authorization"] = true, ["api-key"] = true,
                             ["x-api-key"] = true, cookie = true }

local function credential_header(lname)
  return CREDENTIAL_HEADERS[lname] or find(lname, "[-_]key$") or find(lname, "[-_]token$")
    or find(lname, "[-_]secret$")
end

-- "Bearer XYZ": the token XYZ is a secret on its own too.
local function scheme_token(v)
  return match(v, "^%a[%w%-]*[ \t]+(%S+)[ \t]*$")
end

local function parse_secret_headers(v, headers, path)
  if v == nil then return {} end
  if type(v) ~= "table" then fail(path .. " must be an array of header names (got " .. got(v) .. ")") end
  local set = {}
  for i = 1, array_length(v, path) do
    local p = path .. "[" .. i .. "]"
    local name = lower(non_empty_string(v[i], p))
    local found = false
    for _, h in ipairs(headers) do found = found or lower(h[1]) == name end
    if not found then fail(p .. " " .. show(v[i]) .. " names no header of " .. gsub(path, "secret_headers$", "headers")) end
    set[name] = true
  end
  return set
end

-- Marks the headers whose values are secrets (h.secret), refusing short ones.
local function mark_secret_headers(headers, listed, path)
  for _, h in ipairs(headers) do
    local lname = lower(h[1])
    if listed[lname] or credential_header(lname) then
      local hpath = path .. "[" .. show(h[1]) .. "]"
      local hint = "leave the header out for a server that needs none"
      long_enough(h[2], hpath, hint)
      local token = scheme_token(h[2])
      if token then long_enough(token, hpath .. "'s token", hint) end
      h.secret = true
    end
  end
  return headers
end

local function parse_endpoint_headers(ep, path)
  local hpath = path .. ".headers"
  local headers = parse_headers(ep.headers, hpath)
  local listed = parse_secret_headers(ep.secret_headers, headers, path .. ".secret_headers")
  return mark_secret_headers(headers, listed, hpath)
end

local ENDPOINT_KEYS = { "name", "base_url", "api_key", "api_key_env", "weight", "rpm", "tpm",
                        "max_concurrency", "models", "headers", "secret_headers" }

local function parse_endpoint(ep, path)
  if type(ep) ~= "table" then fail(path .. " must be a table (got " .. got(ep) .. ")") end
  check_keys(ep, ENDPOINT_KEYS, path)
  local name = ep.name
  if name ~= nil then
    non_empty_string(name, path .. ".name")
    if #name > 64 or not find(name, "^[%w%._%-:/]+$") then
      fail(path .. ".name must be 1..64 characters of letters, digits and . _ - : / (got "
           .. show(name) .. ")")
    end
  end
  local url, host = parse_base_url(ep.base_url, path .. ".base_url")
  return {
    name = name,
    default_name = host,
    base_url = url,
    url = url .. "/chat/completions",
    api_key = parse_api_key(ep, path),
    weight = number(ep.weight, path .. ".weight", WEIGHT, 1),
    rpm = number(ep.rpm, path .. ".rpm", POSITIVE, 0),
    tpm = number(ep.tpm, path .. ".tpm", POSITIVE, 0),
    max_concurrency = number(ep.max_concurrency, path .. ".max_concurrency", CONCURRENCY, 0),
    models = parse_models(ep.models, path .. ".models"),
    headers = parse_endpoint_headers(ep, path),
  }
end

-- Explicit names must be unique; a missing name defaults to host[:port], suffixed
-- #2, #3... (a character explicit names cannot contain) until it is free.
local function assign_names(list)
  local owner = {}
  for i, ep in ipairs(list) do
    if ep.name then
      if owner[ep.name] then
        fail("endpoints[" .. i .. "].name " .. show(ep.name) .. " is already used by endpoints["
             .. owner[ep.name] .. "]")
      end
      owner[ep.name] = i
    end
  end
  for i, ep in ipairs(list) do
    if not ep.name then
      local base = sub(ep.default_name, 1, 56)
      local name, n = base, 1
      while owner[name] do
        n = n + 1
        name = base .. "#" .. n
      end
      ep.name, owner[name] = name, i
    end
    ep.default_name = nil
  end
end

local function parse_endpoints(v)
  if v == nil then fail("endpoints is required (an array of endpoint tables)") end
  if type(v) ~= "table" then fail("endpoints must be an array of tables (got " .. got(v) .. ")") end
  local n = array_length(v, "endpoints")
  if n == 0 then fail("endpoints must contain at least one endpoint") end
  if n > MAX_ENDPOINTS then
    fail("endpoints must contain at most " .. MAX_ENDPOINTS .. " endpoints (got " .. n .. ")")
  end
  local list = {}
  for i = 1, n do list[i] = parse_endpoint(v[i], "endpoints[" .. i .. "]") end
  assign_names(list)
  return list
end

local STRATEGIES = { weighted = true, priority = true, round_robin = true }

local function parse_strategy(v)
  if v == nil then return "weighted" end
  if not STRATEGIES[v] then
    fail('strategy must be one of "weighted", "priority", "round_robin" (got '
         .. (type(v) == "string" and show(v) or got(v)) .. ")")
  end
  return v
end

local function parse_retry(v)
  local t = table_or_nil(v, "retry")
  check_keys(t, { "max_attempts", "base_delay", "max_delay", "max_retry_after", "budget" }, "retry")
  local r = {
    max_attempts = number(t.max_attempts, "retry.max_attempts", COUNT, 5),
    base_delay = number(t.base_delay, "retry.base_delay", SECONDS, 0.5),
    max_retry_after = number(t.max_retry_after, "retry.max_retry_after", SECONDS_OR_ZERO, 120),
  }
  r.max_delay = cap(t.max_delay, "retry.max_delay", r.base_delay, "retry.base_delay", 30)
  if t.budget == false then
    r.budget = -1
  elseif type(t.budget) == "boolean" then
    fail("retry.budget must be a number >= 0 or false (got true)")
  else
    r.budget = number(t.budget, "retry.budget",
                      { desc = "a number >= 0 or false", ok = NON_NEGATIVE.ok }, 0.2)
  end
  return r
end

local function parse_breaker(v)
  local t = table_or_nil(v, "breaker")
  check_keys(t, { "failure_threshold", "failure_rate", "min_calls", "window", "cooldown",
                  "max_cooldown", "half_open_probes" }, "breaker")
  local b = {
    failure_threshold = number(t.failure_threshold, "breaker.failure_threshold", COUNT, 5),
    failure_rate = number(t.failure_rate, "breaker.failure_rate",
                          { desc = "a number in (0, 1]", ok = function(x) return x > 0 and x <= 1 end },
                          0.5),
    min_calls = number(t.min_calls, "breaker.min_calls", COUNT, 20),
    window = number(t.window, "breaker.window", SECONDS, 30),
    cooldown = number(t.cooldown, "breaker.cooldown", SECONDS, 60),
    half_open_probes = number(t.half_open_probes, "breaker.half_open_probes", COUNT, 1),
  }
  b.max_cooldown = cap(t.max_cooldown, "breaker.max_cooldown", b.cooldown, "breaker.cooldown", 300)
  return b
end

local function parse_timeout(v)
  local t = table_or_nil(v, "timeout")
  check_keys(t, { "connect", "first_byte", "idle", "total" }, "timeout")
  return {
    connect = number(t.connect, "timeout.connect", SECONDS, 5),
    first_byte = number(t.first_byte, "timeout.first_byte", SECONDS, 60),
    idle = number(t.idle, "timeout.idle", SECONDS, 30),
    total = number(t.total, "timeout.total", SECONDS, 600),
  }
end

local function parse_tls(v)
  local t = table_or_nil(v, "tls")
  check_keys(t, { "ca_file", "insecure" }, "tls")
  local ca = t.ca_file
  if ca ~= nil then
    non_empty_string(ca, "tls.ca_file")
    local f, err = io.open(ca, "rb")
    local _, rerr
    if f then
      _, rerr = f:read(0) -- opening a directory succeeds; reading it does not
      f:close()
    end
    if not f or rerr then
      fail("tls.ca_file: cannot read " .. show(ca) .. ": " .. (rerr or gsub(err, "^.*: ", "")))
    end
  end
  return { ca_file = ca, insecure = boolean(t.insecure, "tls.insecure", false) }
end

local function parse_user_agent(v)
  if v == nil then return "llmrelay/0.1" end
  if type(v) ~= "string" then fail("user_agent must be a string (got " .. got(v) .. ")") end
  if find(v, "[\r\n]") then fail("user_agent must not contain CR or LF") end
  return no_control(v, "user_agent")
end

local TOP_KEYS = { "endpoints", "strategy", "retry", "breaker", "timeout", "tls",
                   "max_response_bytes", "concurrency", "on_event", "user_agent",
                   "name", "shared_dict", "transport" }

-- OpenResty: the pool's name namespaces its shared-dict keys
-- (llmrelay:<name>:<endpoint>:<field>); shared_dict names a lua_shared_dict.
local function parse_word(v, what, default)
  if v == nil then return default end
  if type(v) ~= "string" then fail(what .. " must be a string (got " .. got(v) .. ")") end
  if not find(v, "^[%w_.%-]+$") then fail(what .. " must be letters, digits, '_', '.' or '-' (got " .. show(v) .. ")") end
  return v
end

local TRANSPORTS = { auto = true, curl = true, resty = true }

local function parse_transport(v)
  if v == nil then return "auto" end
  if not TRANSPORTS[v] then fail("transport must be \"auto\", \"curl\" or \"resty\" (got " .. show(v) .. ")") end
  return v
end

local function normalize(cfg)
  if type(cfg) ~= "table" then fail("config must be a table (got " .. got(cfg) .. ")") end
  check_keys(cfg, TOP_KEYS, "")
  if cfg.on_event ~= nil and type(cfg.on_event) ~= "function" then
    fail("on_event must be a function (got " .. got(cfg.on_event) .. ")")
  end
  return {
    endpoints = parse_endpoints(cfg.endpoints),
    strategy = parse_strategy(cfg.strategy),
    retry = parse_retry(cfg.retry),
    breaker = parse_breaker(cfg.breaker),
    timeout = parse_timeout(cfg.timeout),
    tls = parse_tls(cfg.tls),
    max_response_bytes = number(cfg.max_response_bytes, "max_response_bytes",
                                int_range("an integer >= 1024", 1024, MAX_RESPONSE_BYTES,
                                          "1024 to " .. MAX_RESPONSE_BYTES .. " (1 GiB)"),
                                64 * 1024 * 1024),
    concurrency = number(cfg.concurrency, "concurrency", CONCURRENCY, 64),
    on_event = cfg.on_event,
    user_agent = parse_user_agent(cfg.user_agent),
    name = parse_word(cfg.name, "name", "default"),
    shared_dict = parse_word(cfg.shared_dict, "shared_dict", nil),
    transport = parse_transport(cfg.transport),
  }
end

-- `level` follows error()'s convention as seen from the caller of validate: the
-- default 2 blames whoever called the function that called validate (llmrelay.new).
function _M.validate(user_cfg, level)
  local ok, res = pcall(normalize, user_cfg)
  if ok then return res end
  if getmetatable(res) == Failure then
    error("llmrelay.new: " .. res.msg, (level or 2) + 1)
  end
  error(res, 0)
end

-- The credentials of a normalized config, for errors.scrubber: the api keys,
-- the values of secret headers, and the token of a "Scheme token" value.
function _M.secrets(normalized)
  local keys, seen = {}, {}
  local function add(k)
    if k and not seen[k] then
      seen[k] = true
      keys[#keys + 1] = k
    end
  end
  for _, ep in ipairs(normalized.endpoints) do
    add(ep.api_key)
    for _, h in ipairs(ep.headers) do
      if h.secret then
        add(h[2])
        add(scheme_token(h[2]))
      end
    end
  end
  return keys
end

return _M
