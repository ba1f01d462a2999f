-- The one error shape of llmrelay: every runtime failure is returned as `nil, err`
-- with err built here, so callers, events and the CLI all read the same fields.

local _M = {}

local type, tostring, pairs, setmetatable, getmetatable, error =
  type, tostring, pairs, setmetatable, getmetatable, error
local floor = math.floor
local concat = table.concat
local find, sub, format, gsub = string.find, string.sub, string.format, string.gsub

-- Mirrors LR_ERROR_KINDS in csrc/errors.h: kinds[i] is the C enum value i - 1.
_M.kinds = {
  "ok", "rate_limited", "server_error", "timeout", "connect", "http", "invalid_request",
  "circuit_open", "deadline", "decode", "stream_interrupted", "cancelled",
}

local is_kind = {}
for _, k in ipairs(_M.kinds) do is_kind[k] = true end

-- "ok" names the absence of an error: an error object never carries it.
is_kind.ok = nil

function _M.kind_name(n)
  return _M.kinds[n + 1]
end

local fields = {
  kind = "string", status = "number", endpoint = "string", attempts = "number",
  message = "string", retry_after = "number", partial = true,
}

local mt = {}

local function fmt_seconds(s)
  if s == floor(s) and s < 1e15 and s > -1e15 then return format("%d", s) end
  local txt = gsub(gsub(format("%.2f", s), "0+$", ""), "%.$", "")
  return txt
end

mt.__tostring = function(e)
  local head = { "llmrelay: " .. e.kind }
  local where = {}
  if e.status then where[#where + 1] = "HTTP " .. format("%d", e.status) end
  if e.endpoint then where[#where + 1] = "from endpoint '" .. e.endpoint .. "'" end
  if e.attempts then
    where[#where + 1] = format("after %d attempt%s", e.attempts, e.attempts == 1 and "" or "s")
  end
  if #where > 0 then head[#head + 1] = concat(where, " ") end
  -- One line, whatever the server put in its message.
  if e.message then head[#head + 1] = (gsub(e.message, "[\r\n]+", " ")) end
  local line = concat(head, ": ")
  if e.retry_after then line = line .. " (retry after " .. fmt_seconds(e.retry_after) .. " s)" end
  return line
end

-- Building an error with a bad kind or field is a programmer mistake, so it raises.
function _M.new(spec)
  if type(spec) ~= "table" then
    error("errors.new: expected a table (got " .. type(spec) .. ")", 2)
  end
  local e = {}
  for k, v in pairs(spec) do
    local want = fields[k]
    if not want then
      error("errors.new: unknown field '" .. tostring(k) .. "'", 2)
    end
    if want ~= true and type(v) ~= want then
      error("errors.new: " .. k .. " must be a " .. want .. " (got " .. type(v) .. ")", 2)
    end
    e[k] = v
  end
  if not is_kind[e.kind] then
    error("errors.new: unknown kind '" .. tostring(e.kind) .. "'", 2)
  end
  for _, k in ipairs({ "status", "attempts" }) do
    if e[k] and e[k] ~= floor(e[k]) then
      error("errors.new: " .. k .. " must be an integer (got " .. tostring(e[k]) .. ")", 2)
    end
  end
  return setmetatable(e, mt)
end

function _M.is(v)
  return type(v) == "table" and getmetatable(v) == mt
end

local REDACTED = "[REDACTED]"

local function replace_plain(s, needle)
  local out, pos = {}, 1
  while true do
    local i, j = find(s, needle, pos, true)
    if not i then break end
    out[#out + 1] = sub(s, pos, i - 1)
    out[#out + 1] = REDACTED
    pos = j + 1
  end
  if pos == 1 then return s end
  out[#out + 1] = sub(s, pos)
  return concat(out)
end

-- Replaces every one of the keys in `s` by [REDACTED], plainly (no pattern).
function _M.redact_keys(s, secrets)
  if type(s) ~= "string" or not secrets then return s end
  -- Longest first, so a key that contains another is removed whole.
  local list = {}
  for _, k in pairs(secrets) do
    if type(k) == "string" and k ~= "" then list[#list + 1] = k end
  end
  table.sort(list, function(a, b) return #a > #b end)
  for _, k in ipairs(list) do s = replace_plain(s, k) end
  return s
end

-- A text cut short (the core keeps 2 KiB of an error body) may end with the
-- first bytes of a key: those go too, from MIN_TAIL bytes on.
local MIN_TAIL = 4
local function redact_tail(s, secrets)
  for _, k in pairs(secrets) do
    if type(k) == "string" then
      for n = math.min(#k - 1, #s), MIN_TAIL, -1 do
        if sub(s, -n) == sub(k, 1, n) then return sub(s, 1, #s - n) .. REDACTED end
      end
    end
  end
  return s
end

-- Removes every api key from text that may have come back from a server (some 401
-- bodies quote the key), plus any bearer token, whoever's it is.
function _M.scrub(s, secrets)
  if type(s) ~= "string" then return s end
  s = _M.redact_keys(s, secrets)
  if secrets then s = redact_tail(s, secrets) end
  s = gsub(s, "([Bb][Ee][Aa][Rr][Ee][Rr])%s+[^%s\"'\\,;]+", "%1 " .. REDACTED)
  return s
end

return _M
