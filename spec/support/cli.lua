-- spec/support/cli.lua - run the `llmrelay` CLI (bin/llmrelay) as a child
-- process from busted specs, bounded by coreutils `timeout`, with the clean
-- environment of spec/support/mock.lua's shell helpers.
--
--   local cli = require "spec.support.cli"
--   local rc, out, err = cli.run(dir, "batch in.jsonl -o out.jsonl", "A='1' B='2'")
--       -- dir: where the captured stdout and stderr land (dir/stdout, dir/stderr)
--       -- env: a string of VAR=value assignments (quoted) or nil
--       -- rc: the exit code (124 when the run outlived cli.LIMIT)
--   cli.BIN, cli.LIMIT     -- the CLI's path; seconds any one run may take

local mock = require "spec.support.mock"

local M = {}
M.BIN = "bin/llmrelay"
M.LIMIT = 30

function M.run(dir, args, env)
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local rc = mock.capture(string.format("%s timeout %d %s %s >%s 2>%s; echo $?",
    env and ("env " .. env) or "", M.LIMIT, M.BIN, args, mock.quote(out), mock.quote(err)))
  return tonumber(rc:match("%d+")), mock.read_file(out) or "", mock.read_file(err) or ""
end

return M
