-- The `llmrelay` command line: `llmrelay batch INPUT.jsonl -o OUTPUT.jsonl ...`
-- runs an OpenAI Batch API file through a resilient client, resumably.
-- bin/llmrelay only sets the module paths and calls main(arg).
-- Lua 5.1 / LuaJIT / 5.4.

local core = require "llmrelay.core"
local jsonl = require "llmrelay.cli_jsonl"
local report = require "llmrelay.cli_report"
local fleet = require "llmrelay.cli_fleet"
local help = require "llmrelay.cli_help"
local budgets = require "llmrelay.cli_budget"
local plans = require "llmrelay.cli_plan"
local errors = require "llmrelay.errors"
local outputs = require "llmrelay.cli_output"

local _M = {}

local type, tostring, tonumber, pairs, ipairs, pcall = type, tostring, tonumber, pairs, ipairs, pcall
local find, sub, format, byte = string.find, string.sub, string.format, string.byte
local floor, max = math.floor, math.max
local concat = table.concat

local EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
local BAR_INTERVAL = 0.2      -- progress redraws on a terminal

_M.EXIT = { ok = EXIT_OK, failed = EXIT_FAILED, usage = EXIT_USAGE, internal = EXIT_INTERNAL,
            interrupted = EXIT_INTERRUPTED }

local MAIN_HELP, BATCH_HELP = help.MAIN, help.BATCH

-- Every message of the CLI's own: a URL's password (--redis) never shows.
local function eprint(...)
  io.stderr:write(fleet.mask(concat({ ... })), "\n")
end

local function usage_error(msg, help_hint)
  eprint("llmrelay: ", msg)
  eprint("Try '", help_hint or "llmrelay --help", "' for more information.")
  return EXIT_USAGE
end

---------------------------------------------------------------------------
-- Arguments

local BATCH_FLAGS = {
  ["-o"] = "output", ["--output"] = "output",
  ["-c"] = "config", ["--config"] = "config",
  ["--endpoint"] = "endpoint", ["--concurrency"] = "concurrency",
  ["--max-attempts"] = "max_attempts",
  ["-q"] = "quiet", ["--quiet"] = "quiet",
  ["--retry-failed"] = "retry_failed",
  ["--redis"] = "redis", ["--shard"] = "shard",
  ["--budget"] = "budget", ["--dry-run"] = "dry_run",
  ["--model"] = "model", ["--rpm"] = "rpm", ["--tpm"] = "tpm", ["--summary-json"] = "summary_json",
  ["--errors"] = "errors",
  ["-h"] = "help", ["--help"] = "help",
}
local TAKES_VALUE = { output = true, config = true, endpoint = true, concurrency = true,
                      max_attempts = true, redis = true, shard = true, budget = true,
                      model = true, rpm = true, tpm = true, summary_json = true, errors = true }

-- the whole-number options and their largest value
local WHOLE_MAX = { concurrency = 100000, max_attempts = 1000, rpm = 1e9, tpm = 1e12 }

-- Returns opts, or nil and a message.
local function parse_batch_args(argv, first)
  local o = { endpoints = {} }
  local positional = {}
  local i, only_positional = first, false
  while argv[i] ~= nil do
    local a = argv[i]
    if only_positional or a == "-" or sub(a, 1, 1) ~= "-" then
      positional[#positional + 1] = a
    elseif a == "--" then
      only_positional = true
    else
      local flag, value = a, nil
      local eq = find(a, "=", 1, true)
      if sub(a, 1, 2) == "--" and eq then flag, value = sub(a, 1, eq - 1), sub(a, eq + 1) end
      local name = BATCH_FLAGS[flag]
      if not name then return nil, "batch: unknown option '" .. flag .. "'" end
      if TAKES_VALUE[name] then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return nil, "batch: option '" .. flag .. "' needs a value" end
        end
        if name == "endpoint" then
          o.endpoints[#o.endpoints + 1] = value
        elseif WHOLE_MAX[name] then
          local n = tonumber(value)
          if not n or n < 1 or n ~= floor(n) or n > WHOLE_MAX[name] then
            return nil, ("batch: %s must be a whole number from 1 to %d (got '%s')"):format(flag, WHOLE_MAX[name], value)
          end
          o[name] = n
        else
          if o[name] then return nil, "batch: option '" .. flag .. "' given twice" end
          o[name] = value
        end
      else
        if value ~= nil then return nil, "batch: option '" .. flag .. "' takes no value" end
        o[name] = true
      end
    end
    i = i + 1
  end
  if o.help then return o end
  if #positional == 0 then return nil, "batch: missing INPUT.jsonl" end
  if #positional > 1 then return nil, "batch: one input file only (got '" .. positional[2] .. "' too)" end
  if o.shard then
    local shard, serr = fleet.parse(o.shard)
    if not shard then return nil, serr end
    o.shard = shard
  end
  if o.budget then
    local b, berr = budgets.parse(o.budget)
    if not b then return nil, berr end
    o.budget = b
  end
  o.input = positional[1]
  if o.input == "-" and o.dry_run then return nil, "batch: --dry-run reads a file, not '-'" end
  if not o.output and not o.dry_run then return nil, "batch: missing -o OUTPUT.jsonl" end
  if o.output == "-" then
    return nil, "batch: the output must be a file, not '-' (stdout): it is also the resume record"
  end
  if o.errors and (o.errors == "-" or o.errors == o.output) then
    return nil, "batch: --errors must be a file of its own (not '-', not the output)"
  end
  if o.config and #o.endpoints > 0 then return nil, "batch: use either -c or --endpoint, not both" end
  if not o.config and #o.endpoints == 0 then
    return nil, "batch: no endpoints: give -c config.lua or --endpoint URL"
  end
  return o
end
_M.parse_batch_args = parse_batch_args

---------------------------------------------------------------------------
-- Config and client

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- Returns the table for llmrelay.new, or nil and a message.
local function load_config(o)
  if o.config then
    local f = io.open(o.config, "rb")
    if not f then
      local _, err = io.open(o.config, "rb")
      return nil, "config file '" .. o.config .. "': cannot open: " .. tostring(err)
    end
    f:close()
    local chunk, err = loadfile(o.config)
    if not chunk then return nil, "config file '" .. o.config .. "': " .. tostring(err) end
    local ok, cfg = pcall(chunk)
    if not ok then return nil, "config file '" .. o.config .. "' failed: " .. tostring(cfg) end
    if type(cfg) ~= "table" then
      return nil, "config file '" .. o.config .. "' must return the llmrelay.new table (it returned "
        .. type(cfg) .. ")"
    end
    return copy(cfg)
  end
  local eps = {}
  local key = os.getenv("LLMRELAY_API_KEY")
  for i, url in ipairs(o.endpoints) do
    eps[i] = { base_url = url, api_key_env = (key and key ~= "") and "LLMRELAY_API_KEY" or nil }
  end
  return { endpoints = eps }
end

-- The table for llmrelay.new with the options applied (getenv: os.getenv's
-- stand-in), or nil and a message.
local function client_config(o, getenv)
  local cfg, err = load_config(o)
  if not cfg then return nil, err end
  cfg.redis, o.redis_from = fleet.redis_of(o, cfg, getenv or os.getenv)
  if o.concurrency then
    local c = cfg.concurrency
    if type(c) ~= "number" or c < o.concurrency then cfg.concurrency = o.concurrency end
  end
  if (o.rpm or o.tpm) and type(cfg.endpoints) == "table" then
    local eps = {}
    for i, ep in ipairs(cfg.endpoints) do
      eps[i] = type(ep) == "table" and copy(ep) or ep
      if type(ep) == "table" then eps[i].rpm, eps[i].tpm = o.rpm or ep.rpm, o.tpm or ep.tpm end
    end
    cfg.endpoints = eps
  end
  if o.max_attempts then
    local r = type(cfg.retry) == "table" and copy(cfg.retry) or {}
    r.max_attempts = o.max_attempts
    cfg.retry = r
  end
  return cfg
end
_M.client_config = client_config

-- What a config error is about: the config file, --endpoint, or the Redis URL's source.
local function where_of(o, msg)
  return (o.redis_from and find(msg, "redis", 1, true)) and o.redis_from
    or o.config and ("config file '" .. o.config .. "'") or "--endpoint"
end

-- The config as given (cfg) and validated (norm, nil when invalid) and the
-- scrubber of its secrets (errors.scrubber), or nil, nil and a message.
local function prepare(o)
  local cfg, err = client_config(o)
  if not cfg then return nil, nil, err end
  local keys = {}
  local config = require "llmrelay.config"
  local vok, norm = pcall(config.validate, cfg)
  if vok then keys = config.secrets(norm) end
  -- a config file may have read it by itself; one too short to be a key is not scrubbed
  local env_key = os.getenv("LLMRELAY_API_KEY")
  if env_key and #env_key >= errors.MIN_SECRET then keys[#keys + 1] = env_key end
  for _, pw in ipairs(fleet.redis_secrets(cfg.redis, os.getenv)) do
    if #pw >= errors.MIN_SECRET then keys[#keys + 1] = pw end
  end
  o.norm = vok and norm or nil -- --budget's and --dry-run's prices and models
  if not vok then -- as llmrelay.new says it, without validate's position
    local msg = tostring(norm)
    msg = msg:match("llmrelay%.new: .*") or msg
    o.config_error = where_of(o, msg) .. ": " .. msg
  end
  return cfg, errors.scrubber(keys)
end

-- The client and the scrubber of its secrets, or nil, the scrubber and a message.
local function make_client(o)
  local cfg, scrub, err = prepare(o)
  if not cfg then return nil, nil, err end
  local llmrelay = require "llmrelay"
  local ok, client = pcall(llmrelay.new, cfg)
  if not ok then return nil, scrub, where_of(o, tostring(client)) .. ": " .. tostring(client) end
  o.effective_concurrency = o.concurrency or o.norm.concurrency -- new() took cfg: it validates
  return client, scrub
end

-- --dry-run: reads the input as a run would (and OUTPUT's answers, changing
-- nothing) and prints on stdout what it would send; connects to nothing.
local function run_dry(o)
  local err = jsonl.check_files(o.input, o.output)
  local cfg, scrub
  if not err then
    cfg, scrub, err = prepare(o)
    if cfg and not o.norm then err = scrub:text(o.config_error) end
  end
  local ledger = { ids = core.idset(), lines = {}, spent = 0 }
  if not err and o.output then ledger, err = outputs.scan(o) end
  local plan
  if not err then plan, err = plans.scan(o.input, ledger, o.shard, nil, o.model) end
  if not plan then
    eprint("llmrelay: ", err)
    return EXIT_USAGE
  end
  io.stdout:write(plans.report(o, plans.pool(o.norm), plan, o.budget and ledger.spent))
  return EXIT_OK
end

---------------------------------------------------------------------------
-- The batch command

local function random_hex(n)
  local f = io.open("/dev/urandom", "rb")
  local s = f and f:read(n)
  if f then f:close() end
  if not s or #s < n then
    math.randomseed(os.time() + floor(core.now() * 1e6) % 1000000)
    local t = {}
    for i = 1, n do t[i] = string.char(math.random(0, 255)) end
    s = concat(t)
  end
  return (s:gsub(".", function(c) return format("%02x", byte(c)) end))
end

local function stopping()
  return core.stop_signals() > 0
end

local function note_repairs(note, o, ledger)
  local d = ledger.dropped
  if ledger.rewritten then
    local parts = {}
    if d.torn > 0 then parts[#parts + 1] = "cut a torn last line" end
    if d.invalid > 0 then parts[#parts + 1] = format("dropped %d lines that are not output lines", d.invalid) end
    if d.duplicate > 0 then parts[#parts + 1] = format("dropped %d duplicate answers", d.duplicate) end
    if d.stale > 0 then
      parts[#parts + 1] = format("will read %d changed bad input lines again", d.stale)
    end
    if d.retried > 0 then
      parts[#parts + 1] = format("will send %d cancelled%s requests again", d.retried,
        o.retry_failed and " or failed" or "")
    end
    note("repaired " .. o.output .. ": " .. concat(parts, ", "))
  end
  if ledger.kept > 0 then note(format("resuming: %d lines already answered in %s", ledger.kept, o.output)) end
end

local function run_locked(o)
  core.catch_stop_signals()
  local quiet = o.quiet
  local function note(msg) if not quiet then eprint("llmrelay: ", msg) end end

  local inf, ierr = io.open(o.input, "rb")
  if not inf then
    eprint("llmrelay: cannot open input: ", tostring(ierr))
    return EXIT_USAGE
  end
  local probe_ok, probe_err = inf:read(0)
  if probe_ok == nil and probe_err then
    eprint("llmrelay: cannot read input '", o.input, "': ", tostring(probe_err))
    inf:close()
    return EXIT_USAGE
  end

  local client, scrub, cerr = make_client(o)
  if not client then
    inf:close()
    eprint("llmrelay: ", scrub and scrub:text(cerr) or cerr)
    return EXIT_USAGE
  end

  local shard = o.shard
  local ledger, lerr = outputs.scan(o)
  local total_lines, others
  if ledger then total_lines, others = jsonl.check_input(o.input, ledger, stopping, shard) end
  local budget, berr
  if ledger then budget, berr = budgets.start(o, ledger, stopping) end
  local rok, rerr = true, nil
  if budget then rok, rerr = jsonl.repair(ledger) end
  if not budget or not rok then
    inf:close()
    client:close()
    eprint("llmrelay: ", lerr or berr or rerr)
    return EXIT_USAGE
  end
  note_repairs(note, o, ledger)
  o.spent_before = ledger.spent
  local bnote = budget:start_note(ledger, o.output)
  if bnote then note(bnote) end

  local out, oerr = io.open(o.output, "ab")
  if not out then
    inf:close()
    client:close()
    eprint("llmrelay: cannot open output: ", tostring(oerr))
    return EXIT_USAGE
  end
  out:setvbuf("no")   -- each line goes out in one write(2)
  local errf = out     -- where failed requests and bad lines go: --errors, else OUTPUT
  if o.errors then
    errf, oerr = io.open(o.errors, "ab")
    if not errf then
      out:close()
      inf:close()
      client:close()
      eprint("llmrelay: cannot open --errors file: ", tostring(oerr))
      return EXIT_USAGE
    end
    errf:setvbuf("no")
  end

  local todo = max(0, total_lines - ledger.kept)

  local tty = not quiet and report.is_tty(2)
  local progress = report.progress(o, client, tty)

  -- ids: a random prefix per run, then a counter
  local id_prefix, id_n = "batch_req_" .. random_hex(8), 0
  local function next_id()
    id_n = id_n + 1
    return id_prefix .. format("%07d", id_n)
  end

  local run = { ok = 0, failed = 0, bad = 0, cancelled = 0, lost = 0 }
  local fatal
  local pend = {}        -- [line number] = custom_id or false, while in flight
  local problems = {}    -- [line number] = the bad line's parse (problem, text), in flight
  local done_ids, done_lines = ledger.ids, ledger.lines
  local classify = jsonl.classifier(o.model)

  -- true when the line is in the file; after a failed write nothing more is
  -- written, and each answer left out is counted as lost
  local function write_line(text, f)
    if not fatal then
      f = f or out
      local ok, err = f:write(text .. "\n")
      if ok then return true end
      fatal = "cannot write to " .. (f == out and o.output or o.errors) .. ": " .. tostring(err)
    end
    run.lost = run.lost + 1
    return false
  end

  local function source()
    while not fatal and not budget:spent_out() do   -- a spent budget takes no new line
      local line = inf:read("*l")
      if line == nil then return nil end
      local r, lineno = classify(line)
      if r and (not shard or shard:owns(r.custom_id, lineno)) then
        local cid, problem = r.custom_id, r.problem
        if done_lines[lineno] then
          done_lines[lineno] = nil
        elseif problem then
          pend[lineno] = cid or false
          problems[lineno] = r
          return { key = lineno, error = errors.new { kind = "invalid_request", attempts = 0,
                                                        message = "line " .. lineno .. ": " .. problem } }
        elseif not done_ids:get(cid) then
          pend[lineno] = cid
          return { key = lineno, body = r.body, model = r.model, api = r.api }
        end
      end
    end
    return nil
  end

  local function sink(key, res)
    local cid = pend[key]
    pend[key] = nil
    if budget:result(res) == "unsent" then return end -- refused unsent: a re-run sends it
    if cid == false then cid = nil end
    local bad = problems[key]
    if bad then
      problems[key] = nil
      if write_line(jsonl.input_error_line(next_id(), cid, key, bad.problem, jsonl.bad_line_hash(bad)), errf) then
        run.bad = run.bad + 1
      end
    elseif res.ok then
      if write_line(jsonl.success_line(next_id(), cid, res, scrub)) then run.ok = run.ok + 1 end
    elseif write_line(jsonl.failure_line(next_id(), cid, res, scrub), errf) then
      if res.error and res.error.kind == "cancelled" then
        run.cancelled = run.cancelled + 1
      else
        run.failed = run.failed + 1
      end
    end
  end

  local stop_said = 0
  local function should_stop()
    if fatal then return "cancel" end
    local n, signame = core.stop_signals()
    if n ~= stop_said then
      local inflight = 0
      for _ in pairs(pend) do inflight = inflight + 1 end
      if n == 1 then
        if not quiet then
          progress.say(format("llmrelay: interrupted (%s): finishing %d requests in flight " ..
            "(Ctrl-C, SIGTERM or SIGHUP again cancels them)", signame, inflight))
        end
      elseif stop_said < 2 then
        if not quiet then
          progress.say(format("llmrelay: interrupted again: cancelling %d requests in flight", inflight))
        end
      end
      stop_said = n
    end
    if n >= 2 then return "cancel" end
    if n == 1 then return "drain" end
    return nil
  end

  local batch = require "llmrelay.batch"
  local t0 = core.now()
  local ok, summary = pcall(batch.run, client, source, sink, {
    concurrency = o.effective_concurrency,
    total = todo,
    progress_interval = tty and BAR_INTERVAL or 0.5,
    on_progress = progress.update,
    should_stop = should_stop,
  })
  inf:close()
  local cok, cerr2 = out:close()
  if not cok and not fatal then fatal = "cannot write to " .. o.output .. ": " .. tostring(cerr2) end
  if errf ~= out then
    cok, cerr2 = errf:close()
    if not cok and not fatal then fatal = "cannot write to " .. o.errors .. ": " .. tostring(cerr2) end
  end
  if not ok then
    progress.say("llmrelay: internal error: " .. scrub:text(tostring(summary)))
    return EXIT_INTERNAL
  end
  run.elapsed = core.now() - t0
  summary = summary or {}
  progress.finish()
  local nsig, _, signo = core.stop_signals()
  run.stopped = summary.stopped or (nsig > 0 and "drain") or nil
  if not quiet then report.summary(o, client, summary, run, ledger, total_lines, others) end
  local code
  if fatal then
    eprint("llmrelay: ", fatal)
    code = EXIT_INTERNAL
  else
    if budget:warning() then note(budget:warning()) end
    local left = max(0, total_lines - ledger.kept - run.ok - run.failed - run.bad)
    o.left = left
    local spent_out = budget:spent_out() and left > 0
    if spent_out then eprint("llmrelay: ", budget:message(left, total_lines)) end
    -- lines neither answered nor left by a stop or a budget: only a digest collision
    -- of two custom_ids (about 1e-17 a run, cli_jsonl) could do it; a re-run draws a new key
    local missed = not run.stopped and not spent_out and left > 0
    if missed then eprint(format("llmrelay: %d input lines were not answered: run the same command again", left)) end
    code = run.stopped and (signo and 128 + signo or EXIT_INTERRUPTED)
      or (spent_out or missed or run.failed + run.bad + ledger.kept_errors > 0) and EXIT_FAILED or EXIT_OK
  end
  if o.summary_json then
    local wok, werr = outputs.write_json(o.summary_json,
      outputs.summary_doc(o, client, summary, run, ledger, total_lines, code))
    if not wok then
      eprint("llmrelay: ", werr)
      if code == EXIT_OK then code = EXIT_INTERNAL end
    end
  end
  client:close()
  return code
end

-- The run, holding the output's lock (cli_output.lock) from start to end.
local function run_batch(o)
  local ferr -- a spooled standard input is checked once spooled
  if o.input ~= "-" then ferr = jsonl.check_files(o.input, o.output) or outputs.check_errors_file(o) end
  if ferr then
    eprint("llmrelay: ", ferr)
    return EXIT_USAGE
  end
  local lock, lerr = outputs.lock(o)
  if lock and o.input == "-" then lerr = outputs.spool_stdin(o) end
  if o.input == outputs.spool_path(o.output) then o.input_shown = o.input end -- resuming a spool
  if not lock or lerr then
    if lock then lock:release() end
    eprint("llmrelay: ", lerr)
    return EXIT_USAGE
  end
  local ok, code = pcall(run_locked, o)
  if ok and o.input_shown then outputs.spool_done(o, (code == EXIT_OK or code == EXIT_FAILED) and o.left == 0, eprint) end
  lock:release()
  if not ok then error(code, 0) end
  return code
end

---------------------------------------------------------------------------
-- Entry point

function _M.main(argv)
  argv = argv or {}
  local cmd = argv[1]
  if cmd == nil then
    io.stderr:write(MAIN_HELP)
    return EXIT_USAGE
  end
  if cmd == "-h" or cmd == "--help" or cmd == "help" then
    if cmd == "help" and argv[2] == "batch" then
      io.stdout:write(BATCH_HELP)
    else
      io.stdout:write(MAIN_HELP)
    end
    return EXIT_OK
  end
  if cmd == "--version" then
    io.stdout:write("llmrelay ", tostring(core.version or "?"), "\n")
    return EXIT_OK
  end
  if cmd == "batch" then
    local o, err = parse_batch_args(argv, 2)
    if not o then return usage_error(err, "llmrelay batch --help") end
    if o.help then
      io.stdout:write(BATCH_HELP)
      return EXIT_OK
    end
    if o.dry_run then return run_dry(o) end
    return run_batch(o)
  end
  if sub(cmd, 1, 1) == "-" then return usage_error("unknown option '" .. cmd .. "'") end
  return usage_error("unknown command '" .. cmd .. "'")
end

return _M
