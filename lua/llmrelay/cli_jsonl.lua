-- The JSONL side of `llmrelay batch`: reading OpenAI Batch API input lines,
-- building output lines, checking the files, and the resume ledger (what an
-- existing output file already answers, repaired when a crash left it torn).
-- Lua 5.1 / LuaJIT / 5.4; needs lua-cjson.

local cjson = require "cjson.safe"
local core = require "llmrelay.core"
local errors = require "llmrelay.errors"

local _M = {}

local type, tostring, pairs, ipairs, next = type, tostring, pairs, ipairs, next
local find, sub, format, gsub, byte = string.find, string.sub, string.format, string.gsub, string.byte
local floor = math.floor
local concat = table.concat
local decode, encode = cjson.decode, cjson.encode
local null = cjson.null

local MAX_SHOWN = 60

local function is_array(t)
  return type(t) == "table" and (t[1] ~= nil or next(t) == nil)
end
local BOM = "\239\187\191"   -- UTF-8 byte order mark, stripped from the start of the input

-- The Batch API's urls and the api each names (the client's path for it, llmrelay.new's endpoints)
local API_OF = { ["/v1/chat/completions"] = "chat", ["/chat/completions"] = "chat",
                 ["/v1/embeddings"] = "embeddings", ["/embeddings"] = "embeddings",
                 ["/v1/responses"] = "responses", ["/responses"] = "responses",
                 ["/v1/completions"] = "completions", ["/completions"] = "completions" }
_M.API_OF = API_OF
local URLS_SHOWN = '"/v1/chat/completions", "/v1/embeddings", "/v1/responses" or "/v1/completions"'

-- What each api's body must have: a problem message, or nil.
local function body_problem(api, body)
  if api == "chat" then
    if not is_array(body.messages) then return 'body must have a "messages" array' end
  elseif api == "completions" then
    if body.prompt == nil or body.prompt == null then return 'body must have a "prompt" (for /v1/completions)' end
  elseif body.input == nil or body.input == null then
    return 'body must have an "input" (for /v1/' .. api .. ")"
  end
  return nil
end

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

-- Parses one input line (model: --model's name, set as every body's model, or nil).
-- Returns a table:
--   { custom_id = <string|nil>, body = <raw JSON text>, model = <string|nil>, api = <its url's api> }
--                                                                                  a request
--   { custom_id = <string|nil>, problem = "..." }                                  a bad line
-- custom_id is set whenever the line names one (even when it is bad otherwise).
function _M.parse_input(line, model)
  local doc, err = decode(line)
  if doc == nil then
    return { problem = "invalid JSON: " .. gsub(tostring(err), "^Expected", "expected") }
  end
  if type(doc) ~= "table" or not find(line, "^[ \t\r\n]*{") then
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
  local api = API_OF[doc.url]
  if not api then
    r.problem = "url must be " .. URLS_SHOWN .. " (or the same without /v1; got " .. show(doc.url) .. ")"
    return r
  end
  local body = doc.body
  -- the body as the line wrote it (the core finds the member; cjson checked the line)
  local raw = type(body) == "table" and core.json_member(line, "body")
  if not raw or byte(raw, 1) ~= 123 then
    r.problem = "body must be a JSON object (got " .. show(body, raw or nil) .. ")"
    return r
  end
  r.problem = body_problem(api, body)
  if r.problem then return r end
  local ok, why = core.check_request(raw, api) -- what _submit would refuse, said with the line's number
  if not ok then
    r.problem = "body: " .. tostring(why)
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
  if model then
    -- the body's own "model" string rewritten in place (as is when it already says model), or one put first
    if body.model ~= nil then
      raw = core.set_model(raw, model)
    elseif find(raw, "^{%s*}$") then
      raw = "{\"model\":" .. encode(model) .. "}"
    else
      raw = "{\"model\":" .. encode(model) .. "," .. sub(raw, 2)
    end
  end
  r.body, r.api = raw, api
  r.model = model or body.model
  return r
end

-- Reads the input's lines in order, as the run and the resume check both must:
-- classify(line) -> r, lineno, with r = parse_input's table plus r.text (the
-- line as parsed: BOM and CR cut) and duplicate custom_ids as problems; r is
-- nil for a blank line. The first line naming a custom_id owns it. The
-- custom_ids seen are kept as digests (core.idset, 16 bytes a slot): memory
-- stays flat over a million lines. model: --model's, or nil. Also returns
-- that set: a reader done with the file frees it (set:free()) rather than
-- leave its megabytes to a garbage collector that does not see them.
function _M.classifier(model)
  local seen, lineno = core.idset(), 0
  return function(line)
    lineno = lineno + 1
    if lineno == 1 and sub(line, 1, 3) == BOM then line = sub(line, 4) end
    if byte(line, -1) == 13 then line = sub(line, 1, -2) end
    if not find(line, "%S") then return nil, lineno end
    local r = _M.parse_input(line, model)
    local cid = r.custom_id
    if cid then
      local first = seen:put(cid, lineno)
      if first then
        seen:put(cid, first)
        r.problem = format("duplicate custom_id %s (first on line %d)", show(cid), first)
        r.body, r.model, r.api = nil, nil, nil
      end
    end
    r.text = line
    return r, lineno
  end, seen
end

-- What a bad line's answer stands for: its text and what was wrong with it
-- (a duplicate depends on the earlier line too, which the message names).
function _M.bad_line_hash(r)
  return core.hash(r.text .. "\n" .. r.problem)
end

---------------------------------------------------------------------------
-- Output lines

local function json_string(s)
  if s == nil then return "null" end
  return encode(s)
end

-- Server text reaches an output line only through the scrubber of the keys
-- (errors.scrubber): secrets out, invalid UTF-8 made U+FFFD, and a JSON body
-- stays JSON (only its string values may change), on one line.

-- A cost as an output line records it: USD, finite and >= 0 (nil: none).
local function usd_of(x)
  if type(x) == "number" and x >= 0 and x < math.huge then return x end
  return nil
end

-- Bodies that succeeded lose the keys only: "Bearer ..." may be legitimate text there.
-- A priced answer's line also records its "cost" (USD): a resume adds them up (--budget).
function _M.success_line(id, custom_id, res, scrub)
  local body, is_json = scrub:json(res.body or "null", true)
  if not is_json then body = "null" end -- the core took it as a JSON object: a line stays JSON regardless
  local usd = usd_of(res.cost)
  return concat {
    '{"id":"', id, '","custom_id":', json_string(custom_id),
    ',"response":{"status_code":', format("%d", res.status or 200),
    ',"request_id":', json_string(res.request_id or id),
    ',"body":', body, '},"error":null',
    usd and format(',"cost":%.17g}', usd) or "}",
  }
end

-- A request that failed for good (or was cancelled).
function _M.failure_line(id, custom_id, res, scrub)
  local err = res.error or {}
  local status = res.status or err.status
  local response = "null"
  if status then
    local body, is_json = scrub:json(res.error_body)
    if type(body) ~= "string" or not is_json then body = "null" end
    response = concat { '{"status_code":', format("%d", status), ',"body":', body, "}" }
  end
  local msg = scrub:text(tostring(err.message or err.kind or "request failed"))
  return concat {
    '{"id":"', id, '","custom_id":', json_string(custom_id),
    ',"response":', response,
    ',"error":{"code":', json_string(err.kind or "http"), ',"message":', json_string(msg), "}}",
  }
end

-- A bad input line: keyed by its line number and line_hash (bad_line_hash) on resume.
function _M.input_error_line(id, custom_id, lineno, problem, hash)
  return concat {
    '{"id":"', id, '","custom_id":', json_string(custom_id),
    ',"response":null,"error":{"code":"invalid_request","message":',
    json_string("line " .. lineno .. ": " .. problem), ',"line":', format("%d", lineno),
    ',"line_hash":"', hash, '"}}',
  }
end

---------------------------------------------------------------------------
-- Files

local ENOENT = 2   -- Linux errno: the output does not exist yet

-- The input must be a regular file (it is read twice), the output a regular
-- file or nothing yet, and not the input under another name (a link, a hard
-- link, ./in.jsonl): a device never ends (/dev/full, /dev/zero), a pipe is
-- drained by the resume scan (/dev/stdout | cat hangs). Returns nil or a message.
function _M.check_files(input, output)
  local ist, ierr = core.stat(input)
  if not ist then return "cannot open input: " .. input .. ": " .. tostring(ierr) end
  if ist.type ~= "file" then
    return format("the input must be a regular file (it is read twice): '%s' is a %s", input, ist.type)
  end
  if output == nil then return nil end -- --dry-run without -o
  local ost, oerr, errno = core.stat(output)
  if not ost then
    if errno == ENOENT then return nil end
    return "cannot use output " .. output .. ": " .. tostring(oerr)
  end
  if ost.type ~= "file" then
    return format("the output must be a regular file (it is also the resume record): '%s' is a %s",
      output, ost.type)
  end
  if ost.id == ist.id then
    return format("the output '%s' is the input file '%s' (the same file under another name)", output, input)
  end
  return nil
end

---------------------------------------------------------------------------
-- Resume ledger

local function whole(v, lo, hi)
  return type(v) == "number" and v == floor(v) and v >= lo and v <= hi
end

-- What an output line answers, when it is shaped as one of ours (id a string;
-- response null or {status_code, body}; error null with a response, or
-- {code, message}): ("line", n, true, code, line_hash) for a bad input line
-- (line_hash "" when an older version wrote none), ("id", custom_id, is_error,
-- code) for a request. nil for anything else: an input line, another tool's.
local function line_key(doc)
  if type(doc) ~= "table" or type(doc.id) ~= "string" or doc.id == "" then return nil end
  local cid, resp, e = doc.custom_id, doc.response, doc.error
  if resp ~= null and (type(resp) ~= "table" or not whole(resp.status_code, 100, 599) or resp.body == nil) then
    return nil
  end
  if e == null then
    if type(cid) ~= "string" or cid == "" or resp == null then return nil end
    return "id", cid, false
  end
  if type(e) ~= "table" or type(e.code) ~= "string" or type(e.message) ~= "string" then return nil end
  if cid ~= null and (type(cid) ~= "string" or cid == "") then return nil end
  if e.line ~= nil then
    local h = e.line_hash
    if e.code ~= "invalid_request" or resp ~= null or not whole(e.line, 1, 2 ^ 53)
       or (h ~= nil and type(h) ~= "string") then
      return nil
    end
    return "line", e.line, true, e.code, h or ""
  end
  if cid == null then return nil end
  return "id", cid, true, e.code
end

-- The byte after the last complete line tells a torn tail from a finished file.
local function torn_at_eof(f)
  if f:read(0) ~= nil then return false end
  local pos = f:seek("cur")
  f:seek("cur", -1)
  local torn = f:read(1) ~= "\n"
  f:seek("set", pos)
  return torn
end

-- file: one of ledger.files ({ path, drop_at = {[physical line] = true}, any_drop })
local function drop(file, phys)
  file.drop_at[phys] = true
  file.any_drop = true
end

-- Reads OUTPUT (if it exists) and returns the ledger:
--   { ids = core.idset of the custom_ids answered (value 1),
--     lines = {[n] = {[line_hash] = { file, physical line }}}, files = { {path, drop_at}, ... },
--     n_lines, kept, kept_errors, kept_failed,
--     spent = USD the kept answers record ("cost"), uncosted = kept answers recording none,
--     dropped = { torn =, invalid =, duplicate =, retried =, stale = } }
-- Lines kept: complete (newline-terminated) lines shaped as output lines that
-- answer something not answered before. Dropped: a torn last line, lines that
-- are not ours, duplicates, `cancelled` answers (their requests are sent again),
-- and with retry_failed every failed request (not bad input lines). Nothing is
-- written here: check_input settles the bad lines, then repair rewrites.
-- A file of which no line is ours is refused (nil, message): it is not an
-- output to resume, and repairing it would destroy it. So is one that answers
-- a line of another shard than `shard` (cli_fleet; nil: no --shard).
-- With `ledger` (an earlier scan_output's), the file's answers are added to
-- it: OUTPUT and the --errors file make one ledger.
function _M.scan_output(path, retry_failed, shard, ledger)
  ledger = ledger or { ids = core.idset(), lines = {}, n_lines = 0, kept = 0, kept_errors = 0, kept_failed = 0,
                       spent = 0, uncosted = 0, files = {},
                       dropped = { torn = 0, invalid = 0, duplicate = 0, retried = 0, stale = 0 } }
  local file = { path = path, drop_at = {} }
  ledger.files[#ledger.files + 1] = file
  local f, ferr = io.open(path, "rb")
  if not f then
    -- an output that exists but cannot be read would be resumed as empty: every line twice
    if core.stat(path) then return nil, "cannot read " .. path .. " to resume it: " .. tostring(ferr) end
    return ledger
  end
  local d = ledger.dropped
  local ids, lines = ledger.ids, ledger.lines
  local nphys, ours, foreign = 0, 0, 0
  while true do
    local line = f:read("*l")
    if line == nil then break end
    nphys = nphys + 1
    local ok = false
    if torn_at_eof(f) then
      -- a line without its newline at EOF is torn, even if it parses
      d.torn = d.torn + 1
      if find(line, "%S") and not find(line, '^%s*{%s*"id"%s*:') then foreign = foreign + 1 end
    elseif not find(line, "%S") then
      d.invalid = d.invalid + 1
    else
      local doc = decode(line)
      local kind, key, is_err, code, hash = line_key(doc)
      local cid = kind and doc.custom_id ~= null and doc.custom_id or nil
      if kind and shard and not shard:owns(cid, kind == "line" and key or nil) then
        f:close()
        return nil, shard:foreign(path, cid, kind == "line" and key or nil)
      end
      if not kind then
        d.invalid = d.invalid + 1
        foreign = foreign + 1
      else
        ours = ours + 1
        if code == "cancelled" and kind == "id" then
          d.retried = d.retried + 1
        elseif retry_failed and is_err and kind == "id" then
          d.retried = d.retried + 1
        elseif kind == "line" then
          local entry = lines[key]
          if entry and entry[hash] then
            d.duplicate = d.duplicate + 1
          else
            if not entry then
              entry = {}
              lines[key] = entry
              ledger.n_lines = ledger.n_lines + 1
            end
            entry[hash] = { file, nphys }
            ok = true
          end
        elseif ids:get(key) then
          d.duplicate = d.duplicate + 1
        else
          ids:put(key, 1)
          ok = true
          if is_err then
            ledger.kept_failed = ledger.kept_failed + 1
          else
            local usd = usd_of(doc.cost)
            if usd then ledger.spent = ledger.spent + usd else ledger.uncosted = ledger.uncosted + 1 end
          end
        end
        if ok then
          ledger.kept = ledger.kept + 1
          if is_err then ledger.kept_errors = ledger.kept_errors + 1 end
        end
      end
    end
    if not ok then drop(file, nphys) end
  end
  f:close()
  if ours == 0 and foreign > 0 then
    return nil, path .. " is not an llmrelay output file (none of its lines is an output line): "
      .. "refusing to resume into it or to rewrite it; give another -o"
  end
  return ledger
end

-- An answer to a bad line that no longer stands: dropped, its line read again.
local function forget(ledger, at)
  drop(at[1], at[2])
  ledger.kept = ledger.kept - 1
  ledger.kept_errors = ledger.kept_errors - 1
  ledger.dropped.stale = ledger.dropped.stale + 1
end

-- Counts the input's non-blank lines: this shard's, and the other shards'
-- (shard: cli_fleet's, or nil for the whole file). When the ledger holds
-- answers to bad lines, or the file is split, it reads every line as the run
-- will (classifier); it then forgets the answers to bad lines that are no
-- longer bad in the same way (changed, fixed, gone): ledger.lines[n] is true
-- for the answers that stand. interrupted() is asked now and then: a stop
-- signal cuts the count short (and nothing is forgotten for the lines not
-- reached). Returns this shard's count and the others'.
function _M.check_input(path, ledger, interrupted, shard)
  local f = io.open(path, "rb")
  if not f then return 0, 0 end
  local lines = ledger.lines
  local classify, seen
  if ledger.n_lines > 0 or shard then classify, seen = _M.classifier() end
  local n, others, k, complete = 0, 0, 0, true
  for line in f:lines() do
    k = k + 1
    if classify then
      local r, lineno = classify(line)
      if r then
        if not shard or shard:owns(r.custom_id, lineno) then n = n + 1 else others = others + 1 end
      end
      local entry = lines[lineno]
      if entry then
        local h = r and r.problem and _M.bad_line_hash(r)
        lines[lineno] = (h and entry[h]) and true or nil
        for eh, at in pairs(entry) do
          if eh ~= h then forget(ledger, at) end
        end
      end
    else
      if k == 1 and sub(line, 1, 3) == BOM then line = sub(line, 4) end
      if find(line, "%S") then n = n + 1 end
    end
    if k % 8192 == 0 and interrupted() then
      complete = false
      break
    end
  end
  f:close()
  if seen then seen:free() end
  if classify and complete then
    for lineno, entry in pairs(lines) do
      if entry ~= true then
        for _, at in pairs(entry) do forget(ledger, at) end
        lines[lineno] = nil
      end
    end
  end
  return n, others
end

-- When anything was dropped, rewrites OUTPUT (and the --errors file) without
-- those lines: a temp file next to it, then a rename. Returns true, or nil and a message.
function _M.repair(ledger)
  for _, file in ipairs(ledger.files) do
    if file.any_drop then
      local ok, err = _M.repair_file(file.path, file.drop_at)
      if not ok then return nil, err end
      ledger.rewritten = true
    end
  end
  return true
end

function _M.repair_file(path, dropped_at)
  local tmp = path .. ".tmp"
  local src = io.open(path, "rb")
  local dst, err = io.open(tmp, "wb")
  if not src or not dst then
    if src then src:close() end
    if dst then dst:close(); os.remove(tmp) end
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
  return _M.commit_tmp(dst, tmp, path, "cannot repair ")
end

-- Closes f (written as tmp) and renames tmp to path: true, or nil and
-- what .. path .. ": " .. the error (tmp removed).
function _M.commit_tmp(f, tmp, path, what)
  local okc, cerr = f:close()
  local okr, rerr = okc and os.rename(tmp, path)
  if okr then return true end
  os.remove(tmp)
  return nil, what .. path .. ": " .. tostring(cerr or rerr)
end

return _M
