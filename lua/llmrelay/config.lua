-- Validates the table given to llmrelay.new and returns the normalized copy the C core
-- reads, all from the fields of llmrelay.schema. Every table rejects unknown keys, so a
-- typo never silently becomes a default.
-- Messages name the field path and never echo an api key, a header value or a URL.

local _M = {}

local type, pairs, ipairs, tostring, error, pcall, setmetatable, getmetatable =
  type, pairs, ipairs, tostring, error, pcall, setmetatable, getmetatable
local floor, huge, min = math.floor, math.huge, math.min
local format, find, sub, lower, byte, gsub, match =
  string.format, string.find, string.sub, string.lower, string.byte, string.gsub, string.match
local sort, concat = table.sort, table.concat
local errors = require "llmrelay.errors"
local schema = require "llmrelay.schema"
local dialect = require "llmrelay.dialect"
local route = require "llmrelay.route"

local NUMBERS = schema.numbers
local MAX_ENDPOINTS, MAX_HEADERS, MAX_MODELS =
  schema.MAX_ENDPOINTS, schema.MAX_HEADERS, schema.MAX_MODELS
_M.MAX_SECONDS = schema.MAX_SECONDS -- per-call timeouts (init.lua) share the range
_M.schema = schema

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

local function in_range(t, x)
  return (t.above == nil or x > t.above) and (t.min == nil or x >= t.min)
    and (t.max == nil or x <= t.max)
end

-- A value of number type t (schema.numbers); its range, if any, is said after the value.
local function number(v, path, t)
  if t.false_is and v == false then return t.false_is end
  if type(v) ~= "number" or not finite(v) or (t.int and v ~= floor(v)) or not in_range(t, v) then
    fail(path .. " must be " .. t.desc .. " (got " .. (type(v) == "boolean" and t.false_is
         and tostring(v) or got(v)) .. ")" .. (t.range and ("; the range is " .. t.range) or ""))
  end
  if t.int then return floor(v) end
  return v
end

-- An upper bound paired with a lower one (max_delay, max_cooldown): when left out it is
-- the default, or the lower bound if that is larger, so one setting never contradicts a default.
local function cap(v, path, f, _, out)
  local lower, lower_path = out[f.lower], gsub(path, "[^.]+$", f.lower)
  if v == nil then return lower > f.default and lower or f.default end
  local c = NUMBERS.cap
  return number(v, path, { desc = "a number >= " .. lower_path .. " (" .. fmt_num(lower) .. ")",
                           min = lower, max = c.max,
                           range = fmt_num(lower) .. " to " .. c.max .. c.unit })
end

-- A checker for values of one Lua type.
local function of_type(want)
  local what = "a " .. want
  return function(v, path)
    if type(v) ~= want then fail(path .. " must be " .. what .. " (got " .. got(v) .. ")") end
    return v
  end
end

local boolean, a_function, a_string = of_type("boolean"), of_type("function"), of_type("string")

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

-- A list of names served as they are, or a map { [logical] = upstream name } (route.lua):
-- models is then the logical names, upstream the map.
local function parse_models(v, path, _, _, out)
  if v == nil then return {} end
  if type(v) ~= "table" then
    fail(path .. " must be an array of model names or a map { [logical] = upstream name } (got " .. got(v) .. ")")
  end
  local logical, map = route.model_map(v, path, fail, show, MAX_MODELS)
  out.upstream = map
  if logical then return logical end
  local n = array_length(v, path)
  if n == 0 then fail(path .. " must not be empty (leave it out to serve every model)") end
  if n > MAX_MODELS then fail(path .. ": at most " .. MAX_MODELS .. " models (got " .. n .. ")") end
  local models = {}
  for i = 1, n do models[i] = non_empty_string(v[i], path .. "[" .. i .. "]") end
  return models
end

local PRICE_KINDS = { "input", "output", "cached_input" }

-- { [model] = { input =, output =, cached_input = } }, USD per 1M tokens; "*" prices any
-- other model. input and output are required; cached_input, left out, is input's.
local function parse_prices(v, path)
  if v == nil then return nil end
  if type(v) ~= "table" then fail(path .. " must be a table of model = prices (got " .. got(v) .. ")") end
  local models = {}
  for model in pairs(v) do
    if type(model) ~= "string" or model == "" then
      fail(path .. " must map model names to prices (got " .. (model == "" and "an empty" or "a " .. type(model))
           .. " key)")
    end
    models[#models + 1] = model
  end
  if #models == 0 then fail(path .. " must not be empty (leave it out when prices are unknown)") end
  sort(models)
  local prices = {}
  for _, model in ipairs(models) do
    local p, mpath = v[model], path .. "[" .. show(model) .. "]"
    if type(p) ~= "table" then
      fail(mpath .. " must be a table { input =, output =, cached_input = } (got " .. got(p) .. ")")
    end
    check_keys(p, PRICE_KINDS, mpath)
    local out = {}
    for _, kind in ipairs(PRICE_KINDS) do
      local kpath = mpath .. "." .. kind
      if p[kind] ~= nil then
        out[kind] = number(p[kind], kpath, NUMBERS.usd)
      elseif kind ~= "cached_input" then
        fail(kpath .. " is required (USD per 1M tokens)")
      end
    end
    out.cached_input = out.cached_input or out.input
    prices[model] = out
  end
  return prices
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

local function api_key(key, path, _, ep)
  if ep.api_key_env ~= nil then
    fail(gsub(path, "%.api_key$", "") .. " must not set both api_key and api_key_env")
  end
  non_empty_string(key, path)
  no_control(key, path)
  return long_enough(key, path, "omit api_key for a server that needs none")
end

-- The key read from the environment lands in api_key; api_key_env itself is not kept.
local function api_key_env(env, path, _, _, out)
  non_empty_string(env, path)
  if find(env, "[%c=]") then fail(path .. " is not a valid environment variable name") end
  local value = os.getenv(env)
  if value == nil or value == "" then
    fail(path .. ": environment variable " .. env .. " is not set or empty")
  end
  if find(value, "%c") then
    fail(path .. ": environment variable " .. env .. " must not contain control characters")
  end
  out.api_key = long_enough(value, path .. ": environment variable " .. env,
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

-- Runs after headers: marks the secret ones in out.headers; secret_headers is not kept.
local function secret_headers(v, path, _, _, out)
  mark_secret_headers(out.headers, parse_secret_headers(v, out.headers, path),
                      (gsub(path, "secret_headers$", "headers")))
end

local function endpoint_name(name, path)
  non_empty_string(name, path)
  if #name > 64 or not find(name, "^[%w%._%-:/]+$") then
    fail(path .. " must be 1..64 characters of letters, digits and . _ - : / (got "
         .. show(name) .. ")")
  end
  return name
end

-- Also fills in url, and default_name (host[:port]) for assign_names.
local function base_url(v, path, _, _, out)
  local url, host = parse_base_url(v, path)
  out.url, out.default_name = url .. dialect.DEFAULT_PATH, host
  return url
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

local function enum(v, path, f)
  for _, name in ipairs(f.values) do
    if v == name then return v end
  end
  fail(path .. ' must be one of "' .. concat(f.values, '", "') .. '" (got '
       .. (type(v) == "string" and show(v) or got(v)) .. ")")
end

-- OpenResty: the pool's name namespaces its shared-dict keys
-- (llmrelay:<name>:<endpoint>:<field>); shared_dict names a lua_shared_dict.
local function word(v, path)
  a_string(v, path)
  if not find(v, "^[%w_.%-]+$") then
    fail(path .. " must be letters, digits, '_', '.' or '-' (got " .. show(v) .. ")")
  end
  return v
end

local function text(v, path)
  a_string(v, path)
  if find(v, "[\r\n]") then fail(path .. " must not contain CR or LF") end
  return no_control(v, path)
end

local function readable_file(v, path)
  non_empty_string(v, path)
  local f, err = io.open(v, "rb")
  local _, rerr
  if f then
    _, rerr = f:read(0) -- opening a directory succeeds; reading it does not
    f:close()
  end
  if not f or rerr then
    fail(path .. ": cannot read " .. show(v) .. ": " .. (rerr or gsub(err, "^.*: ", "")))
  end
  return v
end

-- A fleet's Redis (llmrelay.redis reads the URL or table; its errors name the field).
local function redis_options(v, path)
  local o, err = require("llmrelay.redis").options(v)
  if not o then fail(path .. ": " .. gsub(tostring(err), "^redis: ", "")) end
  return o
end

-- The checkers of schema field types that are not numbers: (value, path, field, the
-- user's table, the normalized table so far) -> the normalized value.
local CHECK = {
  endpoint_name = endpoint_name, base_url = base_url, api_key = api_key,
  api_key_env = api_key_env, secret_headers = secret_headers, cap = cap, enum = enum,
  word = word, text = text, ["function"] = a_function, file = readable_file,
  boolean = boolean,
  models = parse_models, prices = parse_prices, headers = parse_headers, redis = redis_options,
  fallbacks = function(v, path, _, _, out) return route.fallbacks(v, path, fail, show, out.endpoints) end,
  -- provider dialects (dialect.lua): path and query make url, after base_url
  url_path = function(v, path, _, _, out)
    v = dialect.check_path(v == nil and dialect.DEFAULT_PATH or v, path, fail)
    out.url = out.base_url .. v
    return v
  end,
  url_query = function(v, path, _, _, out)
    local q, enc = dialect.check_query(v, path, fail)
    if enc ~= "" then out.url = out.url .. "?" .. enc end
    return q
  end,
  auth = function(v, path, _, _, out) return dialect.check_auth(v == nil and "bearer" or v, path, fail, out.headers) end,
  api_paths = function(v, path, _, _, out) return dialect.check_paths(v, path, fail, out) end,
  apis = function(v, path) return dialect.check_apis(v, path, fail) end,
}
-- Types whose checker also decides what a missing value becomes.
local NIL_TOO = { base_url = true, models = true, headers = true, secret_headers = true, cap = true,
                  url_path = true, auth = true, api_paths = true }
for _, f in ipairs(schema.fields) do
  if not CHECK[f.type] and not (NUMBERS[f.type] and NUMBERS[f.type].desc) then
    error("llmrelay.schema: " .. f.path .. " has an unknown type " .. tostring(f.type))
  end
end

local fill

-- The one array of tables (endpoints[i]): 1 to MAX_ENDPOINTS of them, names made unique.
local function fill_array(v, node, path)
  if v == nil then fail(path .. " is required (an array of endpoint tables)") end
  if type(v) ~= "table" then fail(path .. " must be an array of tables (got " .. got(v) .. ")") end
  local n = array_length(v, path)
  if n == 0 then fail(path .. " must contain at least one endpoint") end
  if n > MAX_ENDPOINTS then
    fail(path .. " must contain at most " .. MAX_ENDPOINTS .. " endpoints (got " .. n .. ")")
  end
  local list = {}
  for i = 1, n do
    local p = path .. "[" .. i .. "]"
    if type(v[i]) ~= "table" then fail(p .. " must be a table (got " .. got(v[i]) .. ")") end
    list[i] = fill(v[i], node, p)
  end
  assign_names(list)
  return list
end

-- A new table of the fields of schema node `node`, from the user's table t at `path`.
function fill(t, node, path)
  check_keys(t, node.keys, path)
  local out = {}
  for _, item in ipairs(node.items) do
    local key = item.key
    local v, p = t[key], field(path, key)
    if item.items then
      out[key] = item.array and fill_array(v, item, p) or fill(table_or_nil(v, p), item, p)
    elseif v == nil and not NIL_TOO[item.type] then
      out[key] = item.default
    else
      local check = CHECK[item.type]
      if check then
        out[key] = check(v, p, item, t, out)
      else
        out[key] = number(v, p, NUMBERS[item.type])
      end
    end
  end
  return out
end

local function normalize(cfg)
  if type(cfg) ~= "table" then fail("config must be a table (got " .. got(cfg) .. ")") end
  local out = fill(cfg, schema.tree, "")
  -- a budget table says how much: { usd = N }; none at all is no budget (budget.usd nil)
  if out.budget.usd == nil and cfg.budget ~= nil then fail("budget.usd is required (USD the client may spend)") end
  return out
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
  if normalized.redis then add(normalized.redis.password) end
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
