-- What `llmrelay batch` keeps around its output file: the lock that keeps a
-- second run off it, and the --summary-json file for machines.
-- Lua 5.1 / LuaJIT / 5.4.

local core = require "llmrelay.core"
local cjson = require "cjson.safe"
local jsonl = require "llmrelay.cli_jsonl"

local _M = {}

local ipairs, pcall, format = ipairs, pcall, string.format

-- The lock file of an output: next to it, the holder's pid inside.
function _M.lock_path(output)
  return output .. ".lock"
end

local function lock_one(output)
  local path = _M.lock_path(output)
  local lock, err, pid = core.lock_file(path)
  if lock then return lock end
  if err == "locked" then
    return nil, format("%s is in use by another llmrelay batch (%s, lock %s): "
      .. "wait for it to end, or stop it (a killed run's lock is taken over)", output,
      pid and format("pid %d", pid) or "pid not known yet", path)
  end
  return nil, err
end

-- Takes the locks of OUTPUT and of the --errors file (core.lock_file:
-- flock(2), so a lock left by a killed run is simply taken over). Returns
-- an object whose release() frees both, or nil and a message naming the
-- process that holds one.
function _M.lock(o)
  local a, err = lock_one(o.output)
  if not a then return nil, err end
  local b
  if o.errors then
    b, err = lock_one(o.errors)
    if not b then
      a:release()
      return nil, err
    end
  end
  return { release = function() a:release(); if b then b:release() end end }
end

-- --errors FILE: a regular file or nothing yet, not the input, not OUTPUT
-- (under any name). Returns nil or a message.
function _M.check_errors_file(o)
  if not o.errors then return nil end
  local err = jsonl.check_files(o.input, o.errors)
  if err then return (err:gsub("the output", "the --errors file")) end
  local a, b = core.stat(o.errors), core.stat(o.output)
  if a and b and a.id == b.id then return "--errors " .. o.errors .. " is the output file" end
  return nil
end

-- The resume ledger (cli_jsonl.scan_output) of OUTPUT and, with --errors, of
-- that file too: nil and a message when either cannot be resumed.
function _M.scan(o)
  local ledger, err = jsonl.scan_output(o.output, o.retry_failed, o.shard)
  if ledger and o.errors then ledger, err = jsonl.scan_output(o.errors, o.retry_failed, o.shard, ledger) end
  return ledger, err
end

-- `-`: standard input spooled to OUTPUT.input.jsonl (next to the output,
-- under its lock), which the run then reads as its input: read twice, and
-- still there for a resume if the run does not complete. Returns nil or a message.
function _M.spool_path(output)
  return output .. ".input.jsonl"
end

function _M.spool_stdin(o)
  local spool = _M.spool_path(o.output)
  local tmp = spool .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return "cannot spool standard input to " .. tmp .. ": " .. tostring(err) end
  while true do
    local chunk = io.stdin:read(65536)
    if chunk == nil then break end
    local ok, werr = f:write(chunk)
    if not ok then
      f:close()
      os.remove(tmp)
      return "cannot spool standard input to " .. tmp .. ": " .. tostring(werr)
    end
  end
  local okc, cerr = jsonl.commit_tmp(f, tmp, spool, "cannot spool standard input to ")
  if not okc then return cerr end
  o.input_shown, o.input = "-", spool
  return jsonl.check_files(spool, o.output) or _M.check_errors_file(o)
end

-- After the run on a spooled input (or on that file given as INPUT, to
-- resume): removed when every line was answered
-- (complete), else kept, and the way to resume said.
function _M.spool_done(o, complete, eprint)
  if complete then
    os.remove(o.input)
  else
    eprint("llmrelay: standard input is kept in ", o.input, ": resume with `llmrelay batch ", o.input,
      " -o ", o.output, " ...` (or the same input on standard input again)")
  end
end

-- The --summary-json document: the run's counts as the summary on stderr gives them.
function _M.summary_doc(o, client, summary, run, ledger, total_lines, code)
  local eps = {}
  local ok, st = pcall(client.status, client)
  local per = summary.endpoints or {}
  if ok then
    for _, s in ipairs(st) do
      local e = per[s.name] or {}
      eps[#eps + 1] = { name = s.name, ok = e.ok or 0, failed = e.failed or 0,
                        attempts = e.attempts or s.requests or 0, state = s.state, cost = e.cost }
    end
  end
  local u = summary.usage or {}
  local this_run = run.ok + run.failed + run.bad + run.cancelled
  local answered = ledger.kept + this_run - run.cancelled
  return {
    exit_code = code, input = o.input_shown or o.input, output = o.output, errors = o.errors,
    lines = total_lines, answered = answered, left = math.max(0, total_lines - answered),
    this_run = { ok = run.ok, failed = run.failed, bad = run.bad, cancelled = run.cancelled, lost = run.lost },
    earlier = { kept = ledger.kept, error_lines = ledger.kept_errors, failed = ledger.kept_failed },
    attempts = summary.attempts or 0, retries = summary.retries or 0,
    tokens = { prompt = u.prompt_tokens or 0, completion = u.completion_tokens or 0,
               total = u.total_tokens or ((u.prompt_tokens or 0) + (u.completion_tokens or 0)) },
    cost = summary.cost, spend = summary.spend or {}, endpoints = eps,
    elapsed_s = summary.elapsed or run.elapsed or 0, stopped = run.stopped or cjson.null,
  }
end

-- Writes doc as JSON to path (through a temp file and a rename: never half
-- written). Returns true, or nil and a message.
function _M.write_json(path, doc)
  local text = cjson.encode(doc)
  if not text then return nil, "cannot encode the summary" end
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, "cannot write --summary-json " .. path .. ": " .. tostring(err) end
  local okw, werr = f:write(text, "\n")
  if not okw then
    f:close()
    os.remove(tmp)
    return nil, "cannot write --summary-json " .. path .. ": " .. tostring(werr)
  end
  return jsonl.commit_tmp(f, tmp, path, "cannot write --summary-json ")
end

return _M
