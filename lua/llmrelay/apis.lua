-- The endpoints beyond chat on the client: client:embeddings, client:responses,
-- client:completions and client:request(api, req, opts). They share chat's one path
-- through the core (failover, breakers, limits, deadlines, model groups, prices):
-- only the api differs, which picks each endpoint's path (endpoints[i].path / .paths),
-- the endpoints that serve it (endpoints[i].apis), the request's required field and
-- its token estimate (csrc/reqcheck.c).

local type, tostring = type, tostring

local _M = {}

-- The apis (csrc/api.h) and the field each request must carry (the core checks
-- its JSON again before anything is sent).
local REQUIRED = {
  chat = { "messages", "an array of messages" },
  embeddings = { "input", "a string or an array of strings or tokens" },
  responses = { "input", "a string or an array of input items" },
  completions = { "prompt", "a string or an array of strings or tokens" },
}
_M.REQUIRED = REQUIRED

-- Is api a name the core knows? nil is chat.
function _M.known(api)
  return api == nil or REQUIRED[api] ~= nil
end

-- The request table req of api (nil: chat) at `where`: nil, or a message naming
-- the field it lacks (a programmer mistake in client calls, data in a batch).
function _M.check_fields(req, where, api)
  local need = REQUIRED[api or "chat"]
  local v = req[need[1]]
  local ok = type(v) == "table" or (type(v) == "string" and need[1] ~= "messages")
  if not ok then return where .. "." .. need[1] .. " must be " .. need[2] .. " (got " .. type(v) .. ")" end
end

local NAMES = '"chat", "embeddings", "responses" or "completions"'

-- Adds the methods to Client. one(self, req, opts, fn, api) -> decoded body | nil, err:
-- init.lua's one request, waited for (as chat_completion).
function _M.install(Client, one)
  -- client:embeddings(req, opts) -> { object = "list", data = {...}, usage, _llmrelay } | nil, err
  function Client:embeddings(req, opts)
    return one(self, req, opts, "embeddings", "embeddings")
  end
  -- client:responses(req, opts) -> { object = "response", output = {...}, usage, _llmrelay } | nil, err
  function Client:responses(req, opts)
    return one(self, req, opts, "responses", "responses")
  end
  -- client:completions(req, opts) -> { object = "text_completion", choices = {...}, _llmrelay } | nil, err
  function Client:completions(req, opts)
    return one(self, req, opts, "completions", "completions")
  end
  -- client:request(api, req, opts): the same, the api by name ("chat" is chat_completion)
  function Client:request(api, req, opts)
    if type(api) ~= "string" or not REQUIRED[api] then
      error("request: api must be " .. NAMES .. " (got " .. (type(api) == "string" and api or type(api)) .. ")", 2)
    end
    return one(self, req, opts, "request", api)
  end
end

-- The api of client:stream's opts.api: nil (chat), "responses" or "completions".
function _M.stream_api(api)
  if api == nil or api == "chat" or api == "responses" or api == "completions" then return api end
  error('stream: opts.api must be "chat", "responses" or "completions" (got ' .. tostring(api) .. ")", 3)
end

return _M
