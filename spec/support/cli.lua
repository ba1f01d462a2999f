-- spec/support/cli.lua - run the `llmrelay` CLI (bin/llmrelay) as a child
-- process from busted specs, bounded by coreutils `timeout`, with the clean
-- environment of spec/support/mock.lua's shell helpers.
--
--   local cli = require "spec.support.cli"
--   local rc, out, err = cli.run(dir, "batch in.jsonl -o out.jsonl", "A='1' B='2'")
--       -- dir: where the captured stdout and stderr land (dir/stdout, dir/stderr)
--       -- env: a string of VAR=value assignments (quoted) or nil
--       -- rc: the exit code (124 when the run outlived cli.LIMIT)
--   local pid, rcf = cli.background(dir, args, env, tag)
--       -- the CLI in the background: stdout, stderr in dir/tag.out, dir/tag.err;
--       -- its exit code lands in rcf; stopped by cli.stop_all() if still running
--   cli.stop_all()             -- SIGKILL to every background CLI still running
--   cli.wait_rc(rcf, seconds)  -- that exit code, or nil after `seconds`
--   cli.wait_for(fn, seconds)  -- polls fn() until it is true; its last value
--   cli.lines_in(path)         -- newline-terminated lines in a file so far
--   cli.BIN, cli.LIMIT     -- the CLI's path; seconds any one run may take
--   local W = cli.workdir("llmrelay-cli")  -- a scratch directory for a describe block:
--   setup(W.make) before_each(W.clean) after_each(W.stop) teardown(W.remove)
--       -- W.dir: its path (after W.make); W.path(name); W.write(path, text)
--       -- W.clean removes the outputs (*.jsonl, *.rc, *.pid) a test left;
--       -- W.stop stops every background CLI and mock by PID

local mock = require "spec.support.mock"

local M = {}
M.BIN = "bin/llmrelay"
M.LIMIT = 30

local q, read = mock.quote, mock.read_file

local started = {}   -- pids of the background CLIs

local function sleep(s) mock.run("sleep " .. s) end

function M.run(dir, args, env)
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local rc = mock.capture(string.format("%s timeout %d %s %s >%s 2>%s; echo $?",
    env and ("env " .. env) or "", M.LIMIT, M.BIN, args, q(out), q(err)))
  return tonumber(rc:match("%d+")), read(out) or "", read(err) or ""
end

function M.wait_for(fn, seconds)
  local v
  for _ = 1, seconds * 50 do
    v = fn()
    if v then return v end
    sleep(0.02)
  end
  return v
end

function M.background(dir, args, env, tag)
  local base = dir .. "/" .. tag
  local pidf, rcf = base .. ".pid", base .. ".rc"
  mock.run(string.format("(%s %s %s >%s 2>%s & echo $! >%s; wait $!; echo $? >%s) >/dev/null 2>&1 &",
    env and ("env " .. env) or "", M.BIN, args, q(base .. ".out"), q(base .. ".err"), q(pidf), q(rcf)))
  local pid = M.wait_for(function() return tonumber((read(pidf) or ""):match("%d+")) end, 4)
  assert(pid, "the CLI did not start")
  started[#started + 1] = pid
  return pid, rcf
end

function M.stop_all()
  for _, pid in ipairs(started) do
    if mock.alive(pid) then mock.run("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  started = {}
end

function M.wait_rc(rcf, seconds)
  return M.wait_for(function() return tonumber((read(rcf) or ""):match("%d+")) end, seconds)
end

function M.lines_in(path)
  local _, n = (read(path) or ""):gsub("\n", "")
  return n
end

function M.write(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

function M.workdir(prefix)
  local W = { write = M.write }
  function W.path(name) return W.dir .. "/" .. name end
  function W.make()
    W.dir = mock.capture("mktemp -d /tmp/" .. prefix .. ".XXXXXX"):match("%S+")
    assert(W.dir, "mktemp failed")
  end
  function W.clean()
    mock.run("rm -f " .. q(W.dir) .. "/*.jsonl " .. q(W.dir) .. "/*.rc " .. q(W.dir) .. "/*.pid")
  end
  function W.stop()
    M.stop_all()
    mock.stop_all()
  end
  function W.remove()
    W.stop()
    if W.dir then mock.run("rm -rf " .. q(W.dir)) end
    W.dir = nil
  end
  return W
end

return M
