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

-- The apis (csrc/api.h) and the path each has in OpenAI's layout.
_M.APIS = { "chat", "embeddings", "responses", "completions" }
local SUFFIX = { chat = "/chat/completions", embeddings = "/embeddings", responses = "/responses",
                 completions = "/completions" }
_M.SUFFIX = SUFFIX

-- The path of `api` on an endpoint whose chat path is chat_path: a chat path
-- ending in /chat/completions gives the same prefix (Azure's
-- /openai/deployments/{model}/chat/completions -> /openai/deployments/{model}/embeddings);
-- any other gives OpenAI's layout right after base_url ("/embeddings").
function _M.derive_path(chat_path, api)
  return (chat_path:match("^(.*)/chat/completions$") or "") .. SUFFIX[api]
end

local function show_key(k)
  return type(k) == "string" and format("%q", k) or tostring(k)
end

-- endpoints[i].paths: (value, path, fail, out) -> every other api's path (given or
-- derived); sets out.urls = { [api] = base_url .. its path .. the query } (out.url is chat's).
function _M.check_paths(v, path, fail, out)
  if v ~= nil and type(v) ~= "table" then
    fail(path .. " must be a table { embeddings =, responses =, completions = } of paths (got " .. type(v) .. ")")
  end
  for k in pairs(v or {}) do
    if not SUFFIX[k] or k == "chat" then
      fail(path .. " has no api " .. show_key(k) .. " (embeddings, responses, completions; chat's is endpoints[i].path)")
    end
  end
  local query = find(out.url, "?", 1, true) and out.url:match("%?.*$") or ""
  local paths, urls = {}, { chat = out.url }
  for i = 2, #_M.APIS do
    local api = _M.APIS[i]
    local p = v and v[api]
    if p ~= nil then p = _M.check_path(p, path .. "." .. api, fail) else p = _M.derive_path(out.path, api) end
    paths[api], urls[api] = p, out.base_url .. p .. query
  end
  out.urls = urls
  return paths
end

-- endpoints[i].apis: (value, path, fail) -> the list of api names it serves (nil: all).
function _M.check_apis(v, path, fail)
  if v == nil then return nil end
  local what = ' must be a non-empty array of "chat", "embeddings", "responses", "completions"'
  if type(v) ~= "table" or #v == 0 then fail(path .. what .. " (got " .. (type(v) == "table" and "an empty table" or type(v)) .. ")") end
  local list, seen = {}, {}
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > #v or k % 1 ~= 0 then fail(path .. what .. " (unexpected key " .. show_key(k) .. ")") end
  end
  for i = 1, #v do
    local a = v[i]
    if not SUFFIX[a] then fail(path .. "[" .. i .. "]" .. what .. " (got " .. show_key(a) .. ")") end
    if seen[a] then fail(path .. " names " .. show_key(a) .. " twice") end
    seen[a], list[#list + 1] = true, a
  end
  return list
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
