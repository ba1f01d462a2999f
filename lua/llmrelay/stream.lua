-- Streamed chat completions, legacy completions and Responses: the object
-- client:stream returns. A Responses stream (opts.api = "responses") yields
-- its decoded events (tables with .type); the core ends it cleanly only after
-- response.completed; response.failed and error events end it as
-- "server_error", response.incomplete as "stream_interrupted" (err.partial: the
-- text so far, the response.output_text.delta deltas), a cut before the terminal
-- event as any stream's (csrc/evbuf.c).
--
-- The C core decodes the text/event-stream and keeps each attempt's events
-- until this side takes them; until the first one is taken an attempt that
-- fails is retried or failed over like any other, after it the stream can
-- only end complete or with kind "stream_interrupted" (err.partial holds the
-- text received). This file turns events into decoded chunks, counts the
-- text, and waits: yielding inside llmrelay.run, driving the loop outside.
--
--   for chunk, err in client:stream(req) do ... end
--     chunk: a decoded chat.completion.chunk; on failure the body sees
--     chunk == false and err (a generic for would end silently on nil).
--   local st = client:stream(req); local chunk, err = st:next()
--     chunk, or nil at the clean end, or nil, err.

local cjson = require "cjson.safe"
local errors = require "llmrelay.errors"
local usage_event = require("llmrelay.cost").usage_event

local type, ipairs, pcall, setmetatable, concat, remove = type, ipairs, pcall, setmetatable, table.concat, table.remove
local newproxy, getmetatable = newproxy, getmetatable -- newproxy: Lua 5.1 / LuaJIT only
local decode = cjson.decode

local Stream = {}
Stream.__index = Stream

local _M = {}

-- client: the llmrelay client; id: the core's request id; waiter: its waiter;
-- on_delta: optional function(text); make_error(client, r): a core result -> err;
-- scrub: the request's scrubber (llmrelay.reqopts.scrubber), for its request id.
-- api: nil (chat), "completions" or "responses".
function _M.new(client, id, waiter, on_delta, make_error, scrub, api)
  local st = setmetatable({
    _client = client, _id = id, _waiter = waiter, _on_delta = on_delta, _make_error = make_error, _redact = scrub,
    _api = api,
    _queue = {}, _qi = 1, _parts = {}, _finished = false,
    usage = nil, chunks = 0,
  }, Stream)
  if newproxy then
    -- Lua 5.1 / LuaJIT finalize userdata only: the stream's __gc rides on one
    local proxy = newproxy(true)
    getmetatable(proxy).__gc = function() Stream.__gc(st) end
    st._gc = proxy
  end
  return st
end

-- The text of a chunk's first choice (a completions chunk's choices[1].text), or a
-- Responses output_text delta, if any.
local function delta_text(chunk)
  if chunk.type == "response.output_text.delta" then
    return type(chunk.delta) == "string" and chunk.delta ~= "" and chunk.delta or nil
  end
  local choices = chunk.choices
  if type(choices) ~= "table" then return nil end
  for i = 1, #choices do
    local c = choices[i]
    if type(c) == "table" and (c.index == nil or c.index == 0) then
      local d = c.delta
      local t = type(d) == "table" and d.content or c.text
      if type(t) == "string" and t ~= "" then return t end
      return nil
    end
  end
  return nil
end

local function push(self, chunk)
  local q = self._queue
  q[#q + 1] = chunk
end

-- Decodes the core's event strings into the queue. The core checked each is
-- a JSON object; one cjson still refuses (nesting past its limit) ends the
-- stream as "decode".
local function enqueue(self, events, r)
  for i = 1, #events do
    local chunk = decode(events[i])
    if type(chunk) ~= "table" then
      self:close()
      self._err = errors.new { kind = "decode", endpoint = r and r.endpoint, attempts = r and r.attempts,
                               message = "a stream event could not be decoded" }
      return
    end
    push(self, chunk)
  end
end

-- A non-streamed answer to a streamed request (a server that ignored
-- "stream": true) becomes one chunk carrying the whole message.
local function as_chunk(resp, api)
  if api == "responses" then return { type = "response.completed", response = resp } end
  if api == "completions" then return resp end
  local choices = {}
  if type(resp.choices) == "table" then
    for i, c in ipairs(resp.choices) do
      if type(c) == "table" then
        choices[i] = { index = c.index or (i - 1), delta = type(c.message) == "table" and c.message or {},
                       finish_reason = c.finish_reason }
      end
    end
  end
  return { id = resp.id, object = "chat.completion.chunk", created = resp.created, model = resp.model,
           choices = choices, usage = resp.usage }
end

_M.as_chunk = as_chunk

-- A Responses stream's error: err.event names the event that ended it
-- ("response.failed", "response.incomplete", "error") and err.code holds its
-- code (response.error.code, incomplete_details.reason, an error event's code)
-- when the core kept the event (r.error_body).
local function responses_error(self, err, body)
  local ev = decode((self._redact:json(body)))
  if type(ev) ~= "table" or type(ev.type) ~= "string" then return end
  err.event = ev.type
  local resp = type(ev.response) == "table" and ev.response or {}
  local e, inc = resp.error, resp.incomplete_details
  local code = (type(e) == "table" and e.code) or (type(inc) == "table" and inc.reason) or ev.code
  if type(code) == "string" and err.code == nil then err.code = code end
end

-- The call is over: its last events, then success or the error. The
-- request id is the answer's (the core's), else the one its events came with.
local function finish(self, r)
  local client = self._client
  self._finished = true
  if r.endpoint then
    local rid = r.request_id or self._waiter.request_id
    self._llmrelay = { endpoint = client:_endpoint_name(r.endpoint), model = r.model, attempts = r.attempts,
                       latency = r.latency, cost = r.cost, request_id = rid and self._redact:text(rid) }
  end
  if r.events then enqueue(self, r.events, r) end
  if self._err then return end
  if r.ok then
    if r.body and r.body ~= "" then
      local resp = decode(r.body)
      if type(resp) == "table" then push(self, as_chunk(resp, self._api)) end
    end
    return
  end
  self._err = self._make_error(client, r)
  if self._api == "responses" and r.error_body then responses_error(self, self._err, r.error_body) end
end

-- The streaming loop, one for every reader of a stream (this file's
-- streams, the gateway's SSE relay): waits for what comes first of events
-- and the request's end. -> events (a non-empty array of JSON strings) |
-- nil, r (the finished core result; its r.events are the stream's last),
-- charged for the last usage the stream reported (w.usage: the event so far).
-- w.request_id: the x-request-id the events came with (unscrubbed), once known.
function _M.await(client, id, w)
  while true do
    local r = remove(w.inbox, 1)
    if r then
      client:_charge(r, usage_event(r.events, w.usage) or r.body)
      return nil, r
    end
    if w.ready then
      w.ready = false
      local events, request_id = client:_stream_take(id)
      if events and #events > 0 then
        w.usage = usage_event(events, w.usage)
        w.request_id = request_id or w.request_id
        return events
      end
    end
    client:_wait(w)
  end
end

-- Fills the queue: events that arrived, or the final result.
local function fill(self)
  local events, r = _M.await(self._client, self._id, self._waiter)
  if events then
    enqueue(self, events)
  else
    finish(self, r)
  end
end

-- -> chunk | nil (the clean end) | nil, err
function Stream:next()
  while true do
    local q, i = self._queue, self._qi
    local chunk = q[i]
    if chunk ~= nil then
      q[i] = nil
      self._qi = i + 1
      self.chunks = self.chunks + 1
      if chunk.usage ~= nil and chunk.usage ~= cjson.null then self.usage = chunk.usage end
      local resp = chunk.type == "response.completed" and chunk.response
      if type(resp) == "table" and type(resp.usage) == "table" then self.usage = resp.usage end
      local t = delta_text(chunk)
      if t then
        self._parts[#self._parts + 1] = t
        if self._on_delta then self._on_delta(t) end
      end
      return chunk
    end
    self._queue, self._qi = {}, 1
    if self._finished then
      local err = self._err
      if err then
        self._err = nil
        if err.kind == "stream_interrupted" or self.chunks > 0 then err.partial = concat(self._parts) end
        return nil, err
      end
      return nil
    end
    if self._client:_closed() then
      self._finished = true
      return nil, errors.new { kind = "cancelled", message = "the client was closed" }
    end
    fill(self)
  end
end

-- The text of the first choice so far.
function Stream:text()
  return concat(self._parts)
end

-- Stops a stream that is still running (a loop left early): its transfer is
-- aborted and its connection slot freed. Safe to call twice.
local function stop(self, pump)
  if self._finished then return end
  self._finished = true
  -- pump: hands the cancelled call back to the core at once
  self._client:_cancel(self._id, pump)
end

function Stream:close()
  stop(self, true)
end

-- The iterator protocol: for chunk, err in st (or in client:stream(req)).
-- A failure comes as false, err, so the loop body sees it: a generic for
-- would end silently on nil, the truncated-answer trap this API exists to
-- close. Called directly the same holds; st:next() is the nil, err form.
function Stream.__call(self)
  local chunk, err = self:next()
  if chunk == nil and err ~= nil then return false, err end
  return chunk
end

Stream.__close = Stream.close
-- A stream dropped unfinished frees its slot; the client may be gone already.
-- No loop step from a finalizer: the next step hands the call back.
Stream.__gc = function(self) pcall(stop, self, false) end

return _M
