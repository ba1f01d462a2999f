-- llmrelay.reqopts: a request's own headers (opts.headers) and endpoint
-- restriction (opts.endpoints) on chat_completion, chat, stream and batch. Checked
-- here once; a mistake is the caller's (error(), naming the field, never a
-- value). The executor gets what check returns:
--   { headers = { "Name: value", ... } | nil, only = <endpoint numbers, one a byte> | nil,
--     secrets = { values of credential headers } | nil }
-- Both executors send the headers with every attempt, in place of an
-- endpoint's configured header of the same name; the relay serves the
-- request only from the named endpoints that also serve its model.

local errors = require "llmrelay.errors"

local type, pairs, tostring, error = type, pairs, tostring, error
local find, lower, match, char, format = string.find, string.lower, string.match, string.char, string.format
local sort = table.sort

local _M = {}

_M.MAX_HEADERS = 64 -- csrc/transport_curl.h LR_MAX_REQUEST_HEADERS
local MAX_VALUE = 8192

-- What the connection pool sets itself (lowercase names).
local OWNED = {
  authorization = true, ["api-key"] = true, host = true, ["content-length"] = true, ["content-type"] = true,
  ["transfer-encoding"] = true, connection = true, expect = true,
}

-- A header whose value is a credential: scrubbed from errors like an api key.
local function credential(lname)
  return find(lname, "authorization", 1, true) or find(lname, "key", 1, true) or find(lname, "token", 1, true)
    or find(lname, "secret", 1, true) or find(lname, "cookie", 1, true)
end

local function show(name)
  return format("%q", name)
end

local function check_headers(v, fn, out, level)
  if type(v) ~= "table" then error(fn .. ": opts.headers must be a table of header names to values", level) end
  local list, secrets, seen = {}, nil, {}
  for name, value in pairs(v) do
    if type(name) ~= "string" then
      error(fn .. ": opts.headers must map header names to values (got a " .. type(name) .. " key)", level)
    end
    local path = fn .. ": opts.headers[" .. show(name) .. "]"
    if not find(name, "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$") then error(path .. " is not a valid header name", level) end
    local lname = lower(name)
    if OWNED[lname] then error(path .. " is set by llmrelay's connection pool (not per request)", level) end
    if seen[lname] then
      error(fn .. ": opts.headers sets " .. show(seen[lname]) .. " and " .. show(name)
            .. " (header names are case-insensitive)", level)
    end
    seen[lname] = name
    -- a value may be a credential: say what is wrong, never what it is
    if type(value) ~= "string" then error(path .. " must be a string (got " .. type(value) .. ")", level) end
    if find(value, "[\r\n]") then error(path .. " must not contain CR or LF", level) end
    if find((value:gsub("\t", "")), "%c") then error(path .. " must not contain control characters", level) end
    if #value > MAX_VALUE then error(path .. " is longer than " .. MAX_VALUE .. " bytes", level) end
    if credential(lname) and value ~= "" then
      if #value < errors.MIN_SECRET then
        error(path .. " is too short to keep secret: a credential must be at least " .. errors.MIN_SECRET
              .. " characters", level)
      end
      secrets = secrets or {}
      secrets[#secrets + 1] = value
      -- "Bearer XYZ": the token on its own too
      local token = match(value, "^%a[%w%-]*[ \t]+(%S+)[ \t]*$")
      if token and #token >= errors.MIN_SECRET then secrets[#secrets + 1] = token end
    end
    list[#list + 1] = name .. ": " .. value
  end
  if #list > _M.MAX_HEADERS then
    error(fn .. ": opts.headers: at most " .. _M.MAX_HEADERS .. " headers (got " .. #list .. ")", level)
  end
  sort(list) -- the same request sends them in the same order
  if #list > 0 then out.headers = list end
  out.secrets = secrets
end

local function check_endpoints(v, fn, index, out, level)
  if type(v) ~= "table" or #v == 0 then
    error(fn .. ": opts.endpoints must be a non-empty array of endpoint names", level)
  end
  local bytes = {}
  for k, name in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > #v or k % 1 ~= 0 then
      error(fn .. ": opts.endpoints must be an array of endpoint names (got key " .. tostring(k) .. ")", level)
    end
    if type(name) ~= "string" then
      error(fn .. ": opts.endpoints[" .. k .. "] must be an endpoint name (got " .. type(name) .. ")", level)
    end
    local i = index[name]
    if not i then error(fn .. ": opts.endpoints[" .. k .. "] names no endpoint: " .. show(name), level) end
    bytes[#bytes + 1] = char(i)
  end
  out.only = table.concat(bytes)
end

-- opts.headers and opts.endpoints of opts (already a table) -> the table
-- above, or nil when it sets neither. index: endpoint name -> number.
-- level: error()'s, as the caller of check would give it.
function _M.check(opts, fn, index, level)
  local h, e = opts.headers, opts.endpoints
  if h == nil and e == nil then return nil end
  local out = {}
  if h ~= nil then check_headers(h, fn, out, level + 2) end
  if e ~= nil then check_endpoints(e, fn, index, out, level + 2) end
  return out
end

-- sc, and the request's own secrets after it (same interface: text, json).
function _M.scrubber(sc, ro)
  if not (ro and ro.secrets) then return sc end
  local own = errors.scrubber(ro.secrets)
  return {
    text = function(_, s, keys_only)
      return own:text(sc:text(s, keys_only), keys_only)
    end,
    json = function(_, s, keys_only)
      local t, is_json = sc:json(s, keys_only)
      return (own:json(t, keys_only)), is_json
    end,
  }
end

return _M
