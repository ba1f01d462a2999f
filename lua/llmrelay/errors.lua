-- The one error shape of llmrelay: every runtime failure is returned as `nil, err`
-- with err built here, so callers, events and the CLI all read the same fields.

local _M = {}

local type, tostring, pairs, setmetatable, getmetatable, error =
  type, tostring, pairs, setmetatable, getmetatable, error
local floor = math.floor
local concat = table.concat
local sub, format, gsub, byte, find = string.sub, string.format, string.gsub, string.byte, string.find
local core = require "llmrelay.core"
local decode = require("cjson.safe").decode

-- Mirrors LR_ERROR_KINDS in csrc/errors.h: kinds[i] is the C enum value i - 1.
_M.kinds = {
  "ok", "rate_limited", "server_error", "timeout", "connect", "http", "invalid_request",
  "circuit_open", "deadline", "decode", "stream_interrupted", "cancelled", "budget",
}

local is_kind = {}
for _, k in ipairs(_M.kinds) do is_kind[k] = true end

-- "ok" names the absence of an error: an error object never carries it.
is_kind.ok = nil

function _M.kind_name(n)
  return _M.kinds[n + 1]
end

-- code, type, param: what the upstream's error body said (code may be a
-- number); request_id: its x-request-id.
local fields = {
  kind = "string", status = "number", endpoint = "string", attempts = "number",
  message = "string", retry_after = "number", partial = true,
  code = true, type = "string", param = "string", request_id = "string",
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
  if e.code then line = line .. " [code " .. tostring(e.code) .. "]" end
  if e.request_id then line = line .. " [request " .. e.request_id .. "]" end
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
  local code = e.code
  if code ~= nil and type(code) ~= "string" and type(code) ~= "number" then
    error("errors.new: code must be a string or a number (got " .. type(code) .. ")", 2)
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

-- The error of a request the client refused before sending it (its _submit
-- said nil, err): err itself when it is one (kind "budget"), else the
-- message of an invalid request.
function _M.submit_error(err)
  if _M.is(err) then return err end
  return _M.new { kind = "invalid_request", attempts = 0, message = tostring(err) }
end

-- A scrubber of these secrets (csrc/scrub.c; the secrets stay in C memory):
--   sc:text(s [, keys_only])        -> s            messages, plain-text bodies
--   sc:json(s [, keys_only])        -> s, is_json   bodies: only JSON string values change
-- Both replace every secret (and its JSON-escaped forms) by [REDACTED] and make
-- invalid UTF-8 U+FFFD; unless keys_only, "Bearer <token>" loses the token and a
-- text cut inside a secret loses its start. A value that is not a string comes back.
function _M.scrubber(secrets)
  return core.scrubber(secrets or {})
end

-- Credentials shorter than this are refused by the config: a short one would
-- match ordinary text (a key "chat" in "chat.completion").
_M.MIN_SECRET = core.SCRUB_MIN_SECRET

-- s cut to at most n bytes (then "..." is added), never inside a UTF-8 sequence.
function _M.cut(s, n)
  if #s <= n then return s end
  local i = n
  while i > 0 and byte(s, i + 1) >= 0x80 and byte(s, i + 1) < 0xC0 do i = i - 1 end
  return sub(s, 1, i) .. "..."
end

-- The most useful sentence in a failed answer's body: an OpenAI-style
-- error.message, or a short plain-text body; never a whole HTML page.
local function server_message(body)
  if not body or body == "" then return nil end
  local doc = decode(body)
  if type(doc) == "table" then
    local e = doc.error
    if type(e) == "table" and type(e.message) == "string" then return e.message end
    if type(e) == "string" then return e end
    if type(doc.message) == "string" then return doc.message end
    return nil
  end
  if find(body, "^%s*<") then return nil end
  return _M.cut(body, 200)
end

-- The error of a failed core result r (kind, status, attempts, message,
-- retry_after, error_body, request_id): the message says what the server
-- said, and code, type, param and request_id are the upstream's (read in C,
-- core.upstream_error). Everything from the server passes the scrubber sc
-- first. endpoint: the endpoint's name; max_message: the message's cap.
function _M.from_result(r, sc, endpoint, max_message)
  -- scrubbed before server_message cuts it, so that no cut splits a key
  local body = r.error_body and (sc:json(r.error_body))
  local msg = r.message
  local server = server_message(body)
  if server then msg = msg and (msg .. ": " .. server) or server end
  if not msg then msg = r.status and ("HTTP " .. r.status) or r.kind end
  local code, etype, param
  if type(body) == "string" then code, etype, param = core.upstream_error(body) end
  return _M.new {
    kind = r.kind, status = r.status, endpoint = endpoint, attempts = r.attempts,
    message = _M.cut(sc:text(msg), max_message), retry_after = r.retry_after,
    code = code, type = etype, param = param,
    request_id = r.request_id and sc:text(r.request_id),
  }
end

return _M
