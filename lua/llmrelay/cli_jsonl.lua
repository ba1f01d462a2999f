-- The JSONL side of `llmrelay batch`: reading OpenAI Batch API input lines,
-- building output lines, and the resume ledger (what an existing output file
-- already answers, repaired when a crash left it torn).
-- Lua 5.1 / LuaJIT / 5.4; needs lua-cjson.

local cjson = require "cjson.safe"
local errors = require "llmrelay.errors"

local _M = {}

local type, tostring, pairs, ipairs, next = type, tostring, pairs, ipairs, next
local find, sub, format, gsub, byte = string.find, string.sub, string.format, string.gsub, string.byte
local concat = table.concat
local decode, encode = cjson.decode, cjson.encode

local MAX_SHOWN = 60

local URLS = { ["/v1/chat/completions"] = true, ["/chat/completions"] = true }

---------------------------------------------------------------------------
-- Raw JSON slicing. The input line has already been checked by cjson, so the
-- scanner can trust its structure; it only finds where a value ends.

local function skip_ws(s, p)
  return (find(s, "[^ \t\r\n]", p)) or #s + 1
end

-- s[p] is a '"': returns the index of the closing quote.
local function string_end(s, p)
  local q = p + 1
  while true do
    local i = find(s, '["\\]', q)
    if not i then return nil end
    if byte(s, i) == 92 then -- backslash: skip the escaped character
      q = i + 2
    else
      return i
    end
  end
end

-- Returns the index of the last character of the JSON value starting at p.
local function value_end(s, p)
  local c = byte(s, p)
  if c == 34 then return string_end(s, p) end
  if c == 123 or c == 91 then -- { or [
    local depth, q = 0, p
    while true do
      local i = find(s, '[][{}"]', q)
      if not i then return nil end
      local d = byte(s, i)
      if d == 34 then
        i = string_end(s, i)
        if not i then return nil end
      elseif d == 123 or d == 91 then
        depth = depth + 1
      else
        depth = depth - 1
        if depth == 0 then return i end
      end
      q = i + 1
    end
  end
  local i = find(s, "[,}%] \t\r\n]", p)
  return (i or #s + 1) - 1
end

-- The raw text of the top-level member `name` of the JSON object in s (the
-- last one if the name repeats, as cjson does), or nil.
local function member_text(s, name)
  local p = skip_ws(s, 1)
  if byte(s, p) ~= 123 then return nil end
  p = skip_ws(s, p + 1)
  local found
  while byte(s, p) == 34 do
    local ke = string_end(s, p)
    if not ke then return nil end
    local key = sub(s, p + 1, ke - 1)
    if find(key, "\\", 1, true) then key = decode(sub(s, p, ke)) end
    p = skip_ws(s, ke + 1)           -- at ':'
    p = skip_ws(s, p + 1)            -- at the value
    local ve = value_end(s, p)
    if not ve then return nil end
    if key == name then found = sub(s, p, ve) end
    p = skip_ws(s, ve + 1)
    if byte(s, p) ~= 44 then break end -- ','
    p = skip_ws(s, p + 1)
  end
  return found
end
_M.member_text = member_text

---------------------------------------------------------------------------
-- Input lines

local KIND_OF = { [123] = "an object", [91] = "an array", [34] = "a string", [116] = "true",
                  [102] = "false", [110] = "null" }

-- A value the user wrote, for a message: short, quoted, control bytes escaped.
local function show(v, raw)
  local s
  if type(v) == "string" then
    if #v > MAX_SHOWN then v = sub(v, 1, MAX_SHOWN - 3) .. "..." end
    s = '"' .. gsub(v, '[%c"\\]', function(c)
      if c == '"' or c == "\\" then return "\\" .. c end
      return format("\\u%04x", byte(c))
    end) .. '"'
  elseif v == nil or v == cjson.null then
    s = v == nil and "nothing" or "null"
  elseif type(v) == "number" then
    s = format("%.14g", v)
  elseif type(v) == "table" then
    s = raw and KIND_OF[byte(raw, 1)] or "an object or array"
  else
    s = tostring(v)
  end
  return s
end
_M.show = show

local function is_array(t)
  return type(t) == "table" and (t[1] ~= nil or next(t) == nil)
end

-- Parses one input line. Returns a table:
--   { custom_id = <string|nil>, body = <raw JSON text>, model = <string|nil> }   a request
--   { custom_id = <string|nil>, problem = "..." }                                  a bad line
-- custom_id is set whenever the line names one (even when it is bad otherwise).
function _M.parse_input(line)
  local doc, err = decode(line)
  if doc == nil then
    return { problem = "invalid JSON: " .. gsub(tostring(err), "^Expected", "expected") }
  end
  if type(doc) ~= "table" or byte(line, skip_ws(line, 1)) ~= 123 then
    return { problem = "expected a JSON object" }
  end
  local cid = doc.custom_id
  if type(cid) ~= "string" or cid == "" then
    return { problem = "custom_id must be a non-empty string (got " .. show(cid) .. ")" }
  end
  local r = { custom_id = cid }
  if doc.method ~= "POST" then
    r.problem = 'method must be "POST" (got ' .. show(doc.method) .. ")"
    return r
  end
  if not URLS[doc.url] then
    r.problem = 'url must be "/v1/chat/completions" or "/chat/completions" (got ' .. show(doc.url) .. ")"
    return r
  end
  local body = doc.body
  local raw = type(body) == "table" and member_text(line, "body")
  if not raw or byte(raw, 1) ~= 123 then
    r.problem = "body must be a JSON object (got " .. show(body, raw or nil) .. ")"
    return r
  end
  if not is_array(body.messages) then
    r.problem = 'body must have a "messages" array'
    return r
  end
  if body.model ~= nil and type(body.model) ~= "string" then
    r.problem = "body.model must be a string (got " .. show(body.model) .. ")"
    return r
  end
  if body.stream ~= nil and body.stream ~= false and body.stream ~= cjson.null then
    r.problem = "body.stream is not supported in a batch"
    return r
  end
  r.body = raw
  r.model = body.model
  return r
end

---------------------------------------------------------------------------
-- Output lines

-- A response body spliced into an output line: JSON whitespace CR/LF become
-- spaces (inside JSON strings they are always escaped, so this is safe).
local function one_line(s)
  if find(s, "[\r\n]") then s = gsub(s, "[\r\n]", " ") end
  return s
end

local function json_string(s)
  if s == nil then return "null" end
  return encode(s)
end

-- Bodies that succeeded lose the keys only: "Bearer ..." may be legitimate text there.
local scrub_keys = errors.redact_keys

-- secrets: the configured keys, each also in its JSON-escaped form, so a key
-- quoted inside a JSON body is caught either way.
function _M.secret_forms(keys)
  local out, seen = {}, {}
  for _, k in ipairs(keys) do
    if type(k) == "string" and k ~= "" then
      local forms = { k, (sub(encode(k) or "", 2, -2)) }
      for _, f in ipairs(forms) do
        if f ~= "" and not seen[f] then
          seen[f] = true
          out[#out + 1] = f
        end
      end
    end
  end
  table.sort(out, function(a, b) return #a > #b end)
  return out
end

function _M.success_line(id, custom_id, res, secrets)
  local body = scrub_keys(one_line(res.body or "null"), secrets)
  return concat {
    '{"id":"', id, '","custom_id":', json_string(custom_id),
    ',"response":{"status_code":', format("%d", res.status or 200),
    ',"request_id":', json_string(res.request_id or id),
    ',"body":', body, '},"error":null}',
  }
end

-- A request that failed for good (or was cancelled).
function _M.failure_line(id, custom_id, res, secrets)
  local err = res.error or {}
  local status = res.status or err.status
  local response = "null"
  if status then
    local body = "null"
    local eb = res.error_body
    if type(eb) == "string" and decode(eb) ~= nil then
      eb = errors.scrub(one_line(eb), secrets)
      if decode(eb) ~= nil then body = eb end
    end
    response = concat { '{"status_code":', format("%d", status), ',"body":', body, "}" }
  end
  local msg = errors.scrub(tostring(err.message or err.kind or "request failed"), secrets)
  return concat {
    '{"id":"', id, '","custom_id":', json_string(custom_id),
    ',"response":', response,
    ',"error":{"code":', json_string(err.kind or "http"), ',"message":', json_string(msg), "}}",
  }
end

-- A bad input line: keyed by its line number on resume.
function _M.input_error_line(id, custom_id, lineno, problem)
  return concat {
    '{"id":"', id, '","custom_id":', json_string(custom_id),
    ',"response":null,"error":{"code":"invalid_request","message":',
    json_string("line " .. lineno .. ": " .. problem), ',"line":', format("%d", lineno), "}}",
  }
end

---------------------------------------------------------------------------
-- Resume ledger

-- What an output line answers: ("line", n) for a bad input line, ("id", custom_id)
-- for a request, or nil when the line is not one of ours. Also whether it is an
-- error, and its error code.
local function line_key(doc)
  if type(doc) ~= "table" then return nil end
  local e = doc.error
  if type(e) == "table" then
    local n = e.line
    if type(n) == "number" and n >= 1 and n == math.floor(n) then
      return "line", n, true, e.code
    end
  end
  local cid = doc.custom_id
  if type(cid) ~= "string" or cid == "" then return nil end
  if type(e) == "table" then return "id", cid, true, e.code end
  if e ~= nil and e ~= cjson.null then return nil end
  return "id", cid, false
end

-- Reads OUTPUT (if it exists) and returns the ledger:
--   { ids = {[custom_id] = true}, lines = {[n] = true}, kept, kept_errors,
--     dropped = { torn =, invalid =, duplicate =, retried = } , rewrite = bool }
-- Lines kept: complete (newline-terminated) JSON lines that answer something
-- not answered before. Dropped: a torn last line, lines that are not JSON or
-- not ours, duplicates, `cancelled` answers (their requests are sent again),
-- and with retry_failed every failed request (not bad input lines).
-- When anything is dropped the file is rewritten through a temp file + rename.
function _M.scan_output(path, retry_failed)
  local ledger = { ids = {}, lines = {}, kept = 0, kept_errors = 0, kept_failed = 0,
                   dropped = { torn = 0, invalid = 0, duplicate = 0, retried = 0 } }
  local f = io.open(path, "rb")
  if not f then return ledger end
  local drop = ledger.dropped
  local ids, lines = ledger.ids, ledger.lines
  local dropped_at = {}   -- [physical line number] = true for the lines dropped
  local nphys = 0
  local data_tail = false
  local any_drop = false
  while true do
    local line = f:read("*l")
    if line == nil then break end
    nphys = nphys + 1
    local ok = false
    -- a line without its newline at EOF is torn, even if it parses
    local at_eof = false
    if f:read(0) == nil then
      -- read("*l") cannot tell whether a newline ended the last line: look at the byte
      local pos = f:seek("cur")
      f:seek("cur", -1)
      at_eof = f:read(1) ~= "\n"
      f:seek("set", pos)
    end
    if at_eof then
      drop.torn = drop.torn + 1
      data_tail = true
    elseif find(line, "^%s*$") then
      drop.invalid = drop.invalid + 1
    else
      local doc = decode(line)
      local kind, key, is_err, code = line_key(doc)
      if not kind then
        drop.invalid = drop.invalid + 1
      elseif code == "cancelled" and kind == "id" then
        drop.retried = drop.retried + 1
      elseif retry_failed and is_err and kind == "id" then
        drop.retried = drop.retried + 1
      else
        local set = kind == "line" and lines or ids
        if set[key] then
          drop.duplicate = drop.duplicate + 1
        else
          set[key] = true
          ok = true
          ledger.kept = ledger.kept + 1
          if is_err then
            ledger.kept_errors = ledger.kept_errors + 1
            if kind == "id" then ledger.kept_failed = ledger.kept_failed + 1 end
          end
        end
      end
    end
    if not ok then
      dropped_at[nphys] = true
      any_drop = true
    end
  end
  f:close()
  ledger.torn_tail = data_tail
  if not any_drop then return ledger end

  -- Rewrite: copy the kept lines to a temp file next to OUTPUT, then rename.
  local tmp = path .. ".tmp"
  local src = io.open(path, "rb")
  local dst, err = io.open(tmp, "wb")
  if not src or not dst then
    if src then src:close() end
    return nil, "cannot repair " .. path .. ": " .. tostring(err)
  end
  local n = 0
  for line in src:lines() do
    n = n + 1
    if not dropped_at[n] then
      local okw, werr = dst:write(line, "\n")
      if not okw then
        src:close(); dst:close(); os.remove(tmp)
        return nil, "cannot repair " .. path .. ": " .. tostring(werr)
      end
    end
  end
  src:close()
  local okc, cerr = dst:close()
  if not okc then
    os.remove(tmp)
    return nil, "cannot repair " .. path .. ": " .. tostring(cerr)
  end
  local okr, rerr = os.rename(tmp, path)
  if not okr then
    os.remove(tmp)
    return nil, "cannot repair " .. path .. ": " .. tostring(rerr)
  end
  ledger.rewritten = true
  return ledger
end

return _M
