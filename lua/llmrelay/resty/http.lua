-- llmrelay.resty.http: one HTTP/1.1 POST over an nginx cosocket, for the
-- OpenResty executor. Keep-alive pools, TLS with verification, timeouts,
-- Content-Length, chunked and close-delimited bodies, and streamed bodies
-- handed on as they arrive. It decides nothing: the outcome goes back to the
-- relay (csrc/relay.c), which chooses what happens next.

local ngx = ngx
local tcp = ngx.socket.tcp
local find, lower, match, gmatch = string.find, string.lower, string.match, string.gmatch
local tonumber, concat = tonumber, table.concat
local min = math.min

local _M = {}

local KEEPALIVE_IDLE_MS = 60000
local KEEPALIVE_POOL = 64
local MAX_HEADER_BYTES = 64 * 1024
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

-- Sends one request and reads the answer.
-- opts: target, prefix (head_prefix), body, connect_timeout, first_byte_timeout,
--   idle_timeout (streams), deadline (absolute ngx.now() time: the attempt's
--   whole budget), max_bytes, verify (TLS), pool (keep-alive pool name),
--   on_connected(), stream_ok(status, content_type) -> true to stream the body,
--   on_data(piece) -> nil to go on, or a string (why to stop).
-- -> res: { status, headers (raw block), content_type, body (not streamed),
--           sent (the request reached the server), err (nil, or text),
--           err_kind ("connect" "timeout" "http"), streamed, stopped }
function _M.post(o)
  local t = o.target
  local sock = tcp()
  local now = ngx.now
  local function left()
    return o.deadline - now()
  end
  local function fail(kind, msg, res)
    sock:close()
    res = res or {}
    res.err_kind, res.err = kind, msg
    return res
  end
  local budget = left()
  if budget <= 0 then return fail("timeout", "timeout: no time left for an attempt") end
  sock:settimeouts(ms(min(o.connect_timeout, budget)), ms(min(o.first_byte_timeout, budget)),
                   ms(min(o.first_byte_timeout, budget)))
  local ok, err = sock:connect(t.host, t.port, { pool = o.pool, pool_size = KEEPALIVE_POOL })
  if not ok then
    if err == "timeout" then return fail("timeout", "timeout: connecting to " .. t.host_header) end
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
  local bytes
  bytes, err = sock:send({ o.prefix, #o.body, "\r\n\r\n", o.body })
  if not bytes then
    -- a kept-alive connection the server closed meanwhile: nothing reached it
    return fail(err == "timeout" and "timeout" or "connect", "sending to " .. t.host_header .. ": " .. tostring(err),
                res)
  end
  res.sent = true

  -- status line and headers, read as one block (a 1xx answer is skipped)
  local line, status
  repeat
    local reader = sock:receiveuntil("\r\n\r\n")
    local head
    head, err = reader(MAX_HEADER_BYTES + 1)
    if not head then
      if err == "timeout" then return fail("timeout", "timeout: no answer within first_byte", res) end
      if reused and err == "closed" then res.sent = false end -- the server had dropped the idle connection
      return fail("connect", "reading the answer from " .. t.host_header .. ": " .. tostring(err), res)
    end
    if #head > MAX_HEADER_BYTES or reader(1) ~= nil then
      return fail("http", "the answer's headers exceed 64 KiB", res)
    end
    status = tonumber(match(head, "^HTTP/%d%.%d (%d%d%d)"))
    if not status then return fail("connect", "not an HTTP answer from " .. t.host_header, res) end
    local clen, chunked, close, ctype
    for name, value in gmatch(head, "\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
      name = lower(name)
      if name == "content-length" then
        clen = tonumber(value)
      elseif name == "transfer-encoding" then
        chunked = find(lower(value), "chunked", 1, true) ~= nil
      elseif name == "connection" then
        close = find(lower(value), "close", 1, true) ~= nil
      elseif name == "content-type" then
        ctype = lower(value)
      end
    end
    res.status, res.content_type = status, ctype
    res.headers = head .. "\r\n" -- the relay reads the rate-limit hints from it (a status line resets them)
    res.clen, res.chunked, res.close = clen, chunked, close
  until status >= 200
  if res.clen and res.clen > o.max_bytes then
    return fail("http", "response body exceeds max_response_bytes (" .. o.max_bytes .. ")", res)
  end

  local streaming = o.stream_ok and o.stream_ok(status, res.content_type)
  res.streamed = streaming and true or false
  local parts, total = {}, 0
  local function take(piece)
    total = total + #piece
    if total > o.max_bytes then
      return "http", "response body exceeds max_response_bytes (" .. o.max_bytes .. ")"
    end
    if streaming then
      local why = o.on_data(piece)
      if why then
        res.stopped = why
        return "stop"
      end
    else
      parts[#parts + 1] = piece
    end
  end
  -- each read may take the idle timeout (streams) or what is left of the attempt
  local function read_timeout()
    local l = left()
    if l <= 0 then return nil end
    local w = streaming and o.idle_timeout or l
    sock:settimeout(ms(min(w, l)))
    return true
  end
  local function read_error(e)
    if e == "timeout" then
      if left() <= 0 then return fail("timeout", "timeout: the attempt took longer than allowed", res) end
      return fail("timeout", "timeout: the stream was silent for idle (" .. o.idle_timeout .. " s)", res)
    end
    return fail("connect", "the answer was cut: " .. tostring(e), res)
  end
  local function deadline_hit()
    return fail("timeout", "timeout: the attempt took longer than allowed", res)
  end

  -- hands a piece on; a result when reading must end here
  local function deliver(piece)
    local k, msg = take(piece)
    if k == "stop" then
      sock:close()
      return res
    elseif k then
      return fail(k, msg, res)
    end
  end
  -- reads `want` bytes of the body; a result when reading must end here
  local function read_bytes(want)
    while want > 0 do
      if not read_timeout() then return deadline_hit() end
      local piece
      if streaming then
        piece, err = sock:receiveany(min(want, PIECE))
      else
        piece, err = sock:receive(min(want, 4 * PIECE))
      end
      if not piece then return read_error(err) end
      want = want - #piece
      local over = deliver(piece)
      if over then return over end
    end
  end

  local keep = not res.close
  if status == 204 or status == 304 then
    res.clen = 0
  end
  if res.chunked then
    while true do
      if not read_timeout() then return deadline_hit() end
      line, err = sock:receive("*l")
      if not line then return read_error(err) end
      local size = tonumber(match(line, "^%s*(%x+)"), 16)
      if not size then return fail("connect", "bad chunk size in the answer", res) end
      if size == 0 then
        repeat -- trailers
          line, err = sock:receive("*l")
          if not line then return read_error(err) end
        until line == ""
        break
      end
      local over = read_bytes(size)
      if over then return over end
      line, err = sock:receive(2)
      if not line then return read_error(err) end
    end
  elseif res.clen then
    local over = read_bytes(res.clen)
    if over then return over end
  else -- delimited by the close of the connection
    keep = false
    while true do
      if not read_timeout() then return deadline_hit() end
      local piece
      piece, err = sock:receiveany(PIECE)
      if not piece then
        if err == "closed" then break end
        return read_error(err)
      end
      local over = deliver(piece)
      if over then return over end
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
