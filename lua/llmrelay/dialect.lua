-- Provider dialects as data: an endpoint's request path template, its URL
-- query and how its key is sent (config fields endpoints[i].path, .query,
-- .auth; schema.lua declares them, config.lua calls these checkers).
-- Both executors read the result: the normalized endpoint's url
-- (base_url .. path .. "?" .. query, "{model}" left in for expand()) and auth.
local core = require "llmrelay.core"

local _M = {}

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local find, format, gsub, lower = string.find, string.format, string.gsub, string.lower
local sort, concat = table.sort, table.concat

_M.DEFAULT_PATH = "/chat/completions"
_M.PLACEHOLDER = "{model}"
local MAX_QUERY = 16

-- RFC 3986 unreserved characters stay; every other byte becomes %XX (the
-- core's rule, csrc/urlenc.c, the one the libcurl executor's URLs follow).
_M.encode = core.url_encode

-- A path segment may hold these (pchar), and "/" separates segments.
local PATH_CHARS = "^[%w%-%._~!$&'()*+,;=:@/]*$"

-- (value, path, fail) -> the template; fail(msg) raises the config error.
function _M.check_path(v, path, fail)
  if type(v) ~= "string" then fail(path .. " must be a string (got " .. type(v) .. ")") end
  if v:sub(1, 1) ~= "/" then fail(path .. ' must start with "/"') end
  if #v > 512 then fail(path .. " must be at most 512 characters") end
  if find(v, "[%c%s]") then fail(path .. " must not contain whitespace or control characters") end
  if find(v, "[?#]") then fail(path .. " must not contain ? or # (use query for the URL's query)") end
  local rest = gsub(gsub(v, "{model}", ""), "%%%x%x", "")
  if find(rest, "[{}]") then fail(path .. " may hold only {model} as a placeholder") end
  if not find(rest, PATH_CHARS) then
    fail(path .. " must be letters, digits, / and the characters -._~!$&'()*+,;=:@ (others percent-encoded: %XX)")
  end
  return v
end

local function plain(s, p, fail)
  if type(s) ~= "string" then fail(p .. " must be a string (got " .. type(s) .. ")") end
  if find(s, "%c") then fail(p .. " must not contain CR, LF or control characters") end
  return s
end

-- (value, path, fail) -> a copy of the table and its encoded form "a=b&c=d"
-- (names sorted, so every request of an endpoint has the same URL).
function _M.check_query(v, path, fail)
  if type(v) ~= "table" then fail(path .. " must be a table of name = value strings (got " .. type(v) .. ")") end
  local names, copy = {}, {}
  for k, val in pairs(v) do
    local p = path .. "[" .. (type(k) == "string" and format("%q", k) or tostring(k)) .. "]"
    if type(k) ~= "string" then fail(path .. " must have string names (got " .. type(k) .. ")") end
    plain(k, p .. "'s name", fail)
    if k == "" then fail(path .. " must not have an empty name") end
    plain(val, p, fail)
    names[#names + 1] = k
    copy[k] = val
  end
  if #names > MAX_QUERY then fail(path .. " must have at most " .. MAX_QUERY .. " names") end
  sort(names)
  local parts = {}
  for i, k in ipairs(names) do parts[i] = _M.encode(k) .. "=" .. _M.encode(copy[k]) end
  return copy, concat(parts, "&")
end

-- (value, path, fail, headers) -> "bearer" or "api-key"; headers: the endpoint's
-- normalized extra headers, which must not send api-key themselves as well.
function _M.check_auth(v, path, fail, headers)
  if v ~= "bearer" and v ~= "api-key" then
    fail(path .. ' must be one of "bearer", "api-key" (got ' .. (type(v) == "string" and format("%q", v) or type(v)) .. ")")
  end
  if v == "api-key" then
    for _, h in ipairs(headers or {}) do
      if lower(h[1]) == "api-key" then fail(path .. ' is "api-key": remove the api-key header from headers') end
    end
  end
  return v
end

-- The header line that carries the key.
function _M.auth_header(auth, key)
  if auth == "api-key" then return "api-key: " .. key end
  return "Authorization: Bearer " .. key
end

-- The URL of one request: url with {model} replaced by the encoded model.
function _M.expand(url, model)
  if not find(url, "{model}", 1, true) then return url end
  return core.url_expand(url, model or "")
end

return _M
