-- spec/support/node.lua - the official OpenAI Node SDK client
-- (spec/support/node/openai_client.mjs) for the specs.
--
--   local node = require "spec.support.node"
--   local script, why = node.install()   -- install.sh: the SDK into build/node; nil, why if it cannot
--   local r, out = node.run(script, base_url, api_key, model, prompt[, steps])
--     r: the client's JSON line, decoded ({ plain, stream, models, errors };
--        steps "apis": { embeddings, responses, responses_stream, errors });
--        asserts (busted) that the client exited 0 and printed one
--   node.bin                             -- the node that runs the client: $LLMRELAY_NODE or "node"
--                                        -- (e.g. Debian 12's node 18 unpacked elsewhere)

local cjson = require "cjson"
local assert = require "luassert" -- busted's assert lives in the specs' environment, not in _G
local mock = require "spec.support.mock"

local q, capture = mock.quote, mock.capture

local M = {}

M.bin = os.getenv("LLMRELAY_NODE") or "node"

function M.install()
  local out = capture("sh spec/support/node/install.sh 2>&1; echo \"rc=$?\"") or ""
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  if rc ~= 0 then
    return nil, "spec/support/node/install.sh failed (exit " .. tostring(rc) .. "; 3 = node or npm missing):\n" .. out
  end
  local script
  for line in out:gmatch("[^\n]+") do
    if line:match("%.mjs$") then script = line end
  end
  if not script then return nil, "install.sh printed no script path:\n" .. out end
  return script
end

function M.run(script, url, key, model, prompt, steps)
  local cmd = table.concat({ q(M.bin), q(script), q(url), q(key), q(model), q(prompt or "hello"),
                             steps and q(steps) or "" }, " ")
    .. " 2>&1; echo \"rc=$?\""
  local out = capture(cmd) or ""
  local line
  for l in out:gmatch("[^\n]+") do
    if l:sub(1, 1) == "{" then line = l end
  end
  assert.equal("0", out:match("rc=(%d+)%s*$"), out)
  assert.is_string(line, "no JSON line from the SDK client: " .. out)
  return cjson.decode(line), out
end

return M
