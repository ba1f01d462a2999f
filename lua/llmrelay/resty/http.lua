-- llmrelay.resty.http: one HTTP/1.1 POST over an nginx cosocket, for the
-- OpenResty executor. Keep-alive pools, TLS with verification, timeouts,
-- and the answer's bytes moved to the core's decoder (csrc/http1.c), which
-- frames Content-Length, chunked and close-delimited bodies within caps;
-- streamed bodies are handed on as they arrive. It decides nothing: the
-- outcome goes back to the relay (csrc/relay.c), which chooses what happens next.

local ngx = ngx
local core = require "llmrelay.core"
local tcp, now = ngx.socket.tcp, core.now
local http1 = core.http1
local find, match = string.find, string.match
local tonumber, tostring, concat = tonumber, tostring, table.concat

local _M = {}

local KEEPALIVE_IDLE_MS = 60000
local KEEPALIVE_POOL = 64
local PIECE = 65536

-- "https://host:port/path" -> scheme, host, port, path
function _M.parse_url(url)
  local scheme, host, port, path = match(url, "^(https?)://([^/:]+):?(%d*)(/?.*)$")
  if not scheme then
    scheme, host, port, path = match(url, "^(https?)://%[([^%]]+)%]:?(%d*)(/?.*)$")
  end
  if not scheme then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if path == "" then path = "/" end
  return { scheme = scheme, host = host, port = port, path = path, tls = scheme == "https",
           ip = match(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil or find(host, ":", 1, true) ~= nil,
           host_header = (port == 80 and scheme == "http" or port == 443 and scheme == "https") and host
             or (host .. ":" .. port) }
end

local function ms(s)
  local v = s * 1000
  if v < 1 then v = 1 end
  return v
end

-- The request head up to Content-Length, the same for every request to an
-- endpoint; `target` was parsed by parse_url, `headers` is an array of
-- "Name: value" lines (checked for CR/LF by config.lua).
function _M.head_prefix(target, headers)
  local h = { "POST ", target.path, " HTTP/1.1\r\nHost: ", target.host_header, "\r\n" }
  for i = 1, #headers do
    h[#h + 1] = headers[i]
    h[#h + 1] = "\r\n"
  end
  h[#h + 1] = "Content-Length: "
  return concat(h)
end

-- Sends one request and reads the answer. The answer's bytes go, as they
-- come, to the HTTP/1.1 decoder of the core (csrc/http1.c), which frames it,
-- applies every cap and words every error; this loop only moves bytes, and
-- before every read sets the socket's timeout to the smaller of the phase's
-- limit (first_byte until the head is complete, idle while a stream is read,
-- none for a plain body) and the time left to the attempt's deadline, so an
-- attempt costs at most its total whatever the upstream sends.
-- opts: target, prefix (head_prefix), body, connect_timeout, first_byte_timeout,
--   idle_timeout (streams), deadline (absolute core.now() time: the attempt's
--   whole budget), total_timeout (that budget in seconds, for messages),
--   max_bytes, verify (TLS), pool (keep-alive pool name), on_connected(),
--   stream_ok(status, content_type, request_id) -> true to stream the body
--     (request_id: the answer's x-request-id as the core reads it, or nil),
--   on_data(piece) -> nil to go on, or a string (why to stop).
-- -> res: { status, headers (raw block), content_type, body (not streamed),
--           sent (the request reached the server), err (nil, or text),
--           err_kind ("connect" "timeout" "http"), streamed, stopped }
function _M.post(o)
  local t = o.target
  local sock = tcp()
  local dec = http1(o.max_bytes)
  local function fail(kind, msg, res)
    sock:close()
    res = res or {}
    res.err_kind, res.err = kind, msg
    return res
  end
  -- the read or write timeout: the phase's limit (seconds, nil: none) or the
  -- time left, whichever is smaller, and which one it is
  local function limit(phase_s, name)
    local l = o.deadline - now()
    if phase_s and phase_s < l then return phase_s, name end
    return l, "total"
  end
  local function timed_out(which, phase_s, at, res)
    local kind, msg = dec:timeout(which, which == "total" and o.total_timeout or phase_s, at)
    return fail(kind, msg, res)
  end

  local cw, cwhich = limit(o.connect_timeout, "connect")
  if cw <= 0 then return timed_out("total", nil, "connect") end
  local sw = limit(o.first_byte_timeout, "first_byte")
  sock:settimeouts(ms(cw), ms(sw), ms(sw))
  local ok, err = sock:connect(t.host, t.port, { pool = o.pool, pool_size = KEEPALIVE_POOL })
  if not ok then
    if err == "timeout" then return timed_out(cwhich, o.connect_timeout, "connect") end
    return fail("connect", "connect to " .. t.host_header .. ": " .. tostring(err))
  end
  if t.tls and sock:getreusedtimes() == 0 then
    -- nginx checks a certificate's name with X509_check_host, which knows no
    -- IP addresses: an IP literal gets the chain verified, not the name
    local name = t.host
    if t.ip then name = nil end
    -- lua-resty-core 0.1.25 raises an assertion instead of returning the
    -- error when a handshake that ended at once failed verification (its
    -- reused_session = false path would even report success): the pcall turns
    -- that into the failed attempt it is
    local okc, session, herr = pcall(sock.sslhandshake, sock, nil, name, o.verify)
    if not okc or not session then
      return fail("connect", "TLS handshake with " .. t.host_header .. " failed"
                    .. (okc and (": " .. tostring(herr)) or " (the certificate was not accepted)"))
    end
  end
  if o.on_connected then o.on_connected() end
  local reused = (sock:getreusedtimes() or 0) > 0
  local res = { sent = false }
  local swhich
  sw, swhich = limit(o.first_byte_timeout, "first_byte")
  if sw <= 0 then return timed_out("total", nil, "send", res) end
  sock:settimeout(ms(sw))
  local bytes
  bytes, err = sock:send({ o.prefix, #o.body, "\r\n\r\n", o.body })
  if not bytes then
    -- a kept-alive connection the server closed meanwhile: nothing reached it
    if err == "timeout" then return timed_out(swhich, o.first_byte_timeout, "send", res) end
    return fail("connect", "sending to " .. t.host_header .. ": " .. tostring(err), res)
  end
  res.sent = true

  local parts, head, streaming, keep = {}, false, false, false
  while true do
    local phase_s, name
    if not head then
      phase_s, name = o.first_byte_timeout, "first_byte"
    elseif streaming then
      phase_s, name = o.idle_timeout, "idle"
    end
    local w, which = limit(phase_s, name)
    if w <= 0 then return timed_out("total", nil, nil, res) end
    sock:settimeout(ms(w))
    local piece, state, body, kind, msg, left
    piece, err = sock:receiveany(PIECE)
    if piece then
      state, body, kind, msg, left = dec:feed(piece)
    elseif err == "timeout" then
      return timed_out(which, phase_s, nil, res)
    elseif err == "closed" then
      -- the server had dropped the idle connection: the request never reached it
      if reused and dec:received() == 0 then res.sent = false end
      state, kind, msg = dec:eof()
    else
      state, kind, msg = dec:cut(tostring(err))
    end
    if not head then
      local status, ctype, headers, ka, request_id = dec:head()
      if status then
        head = true
        -- the relay reads the rate-limit hints from headers (a status line resets them)
        res.status, res.content_type, res.headers, keep = status, ctype, headers, ka
        streaming = o.stream_ok and o.stream_ok(status, ctype, request_id) or false
        res.streamed = streaming
      end
    end
    if body and body ~= "" then
      if streaming then
        local why = o.on_data(body)
        if why then
          res.stopped = why
          sock:close()
          return res
        end
      else
        parts[#parts + 1] = body
      end
    end
    if state == "done" then
      if left and left > 0 then keep = false end -- bytes after the answer: the connection is out of step
      break
    elseif state == "error" then
      return fail(kind, msg, res)
    end
  end
  if not streaming then res.body = concat(parts) end
  if keep then
    sock:setkeepalive(KEEPALIVE_IDLE_MS, KEEPALIVE_POOL)
  else
    sock:close()
  end
  return res
end

return _M
