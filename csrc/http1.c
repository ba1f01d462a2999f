/* The HTTP/1.1 response decoder. See http1.h. Head lines are gathered in one
 * buffer (the raw header block the relay reads hints from); everything after
 * the head is framed byte by byte or sliced straight out of the caller's
 * input, and never stored. Every cap is checked at the byte that crosses it,
 * so the outcome is the same however the input is split. */
#include "http1.h"
#include "hints.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_STATUS, S_HEADER, S_BODY_CL, S_BODY_CLOSE, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_END, S_TRAILER, S_DONE, S_ERROR };

/* What a status line starts with, byte by byte ('#': a digit). */
static const char status_prefix[] = "HTTP/1.# ";
#define STATUS_PREFIX_LEN 9

static void reset_answer(lr_http1 *h) {
  h->head_len = h->line_start = 0;
  h->ctype_off = h->ctype_len = 0;
  h->fields = h->code = h->minor = 0;
  h->conn_close = h->conn_keep = h->has_te = h->has_cl = 0;
  h->chunked = 0;
  h->content_length = -1;
  h->state = S_STATUS;
}

void lr_http1_init(lr_http1 *h, uint64_t max_body) {
  memset(h, 0, sizeof *h);
  h->max_body = max_body;
  h->kind = LR_E_NONE;
  reset_answer(h);
}

void lr_http1_free(lr_http1 *h) {
  free(h->head);
  h->head = NULL;
  h->head_len = h->head_cap = 0;
}

static lr_h1_event fail(lr_http1 *h, lr_error_kind kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h->message, sizeof h->message, fmt, ap);
  va_end(ap);
  h->kind = kind;
  h->state = S_ERROR;
  return LR_H1_ERROR;
}

static lr_h1_event body_cap(lr_http1 *h) {
  return fail(h, LR_E_HTTP, "response body exceeds max_response_bytes (%llu)", (unsigned long long)h->max_body);
}

static int ows(char c) { return c == ' ' || c == '\t'; }

static void trim(const char **p, size_t *n) {
  while (*n && ows(**p)) (*p)++, (*n)--;
  while (*n && ows((*p)[*n - 1])) (*n)--;
}

/* Calls fn on each comma-separated token of a field value, trimmed. */
static void tokens(lr_http1 *h, const char *v, size_t n, void (*fn)(lr_http1 *, const char *, size_t)) {
  const char *end = v + n;
  while (v < end) {
    const char *comma = memchr(v, ',', (size_t)(end - v));
    const char *te = comma ? comma : end;
    size_t len = (size_t)(te - v);
    trim(&v, &len);
    if (len) fn(h, v, len);
    v = comma ? comma + 1 : end;
  }
}

static void connection_token(lr_http1 *h, const char *t, size_t n) {
  if (lr_equals_ci(t, n, "close")) h->conn_close = 1;
  else if (lr_equals_ci(t, n, "keep-alive")) h->conn_keep = 1;
}

/* The final coding decides: only a body whose last coding is chunked is. */
static void te_token(lr_http1 *h, const char *t, size_t n) { h->chunked = lr_equals_ci(t, n, "chunked"); }

static lr_h1_event content_length(lr_http1 *h, const char *v, size_t n) {
  int64_t cl = 0;
  size_t i;
  if (n == 0 || n > 18) return fail(h, LR_E_CONNECT, "invalid Content-Length in the answer");
  for (i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return fail(h, LR_E_CONNECT, "invalid Content-Length in the answer");
    cl = cl * 10 + (v[i] - '0');
  }
  if (h->has_cl && cl != h->content_length) return fail(h, LR_E_CONNECT, "conflicting Content-Length values in the answer");
  h->has_cl = 1;
  h->content_length = cl;
  return LR_H1_MORE;
}

static lr_h1_event status_line(lr_http1 *h, const char *l, size_t n) {
  int code;
  if (n < 12 || (n > 12 && l[12] != ' ') || l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' ||
      l[11] > '9')
    return fail(h, LR_E_CONNECT, "not an HTTP/1.x answer: malformed status line");
  code = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
  h->code = code;
  h->minor = l[7] - '0';
  h->state = S_HEADER;
  return LR_H1_MORE;
}

static lr_h1_event field_line(lr_http1 *h, const char *l, size_t n) {
  const char *colon, *v;
  size_t name_len, vn, i;
  if (++h->fields > LR_H1_MAX_FIELDS)
    return fail(h, LR_E_HTTP, "the answer has more than %d header fields", LR_H1_MAX_FIELDS);
  if (ows(l[0])) return LR_H1_MORE; /* an obsolete line folding: a continuation, read as nothing */
  colon = memchr(l, ':', n);
  if (!colon || colon == l) return fail(h, LR_E_CONNECT, "malformed header line in the answer");
  name_len = (size_t)(colon - l);
  for (i = 0; i < name_len; i++)
    if ((unsigned char)l[i] <= ' ' || l[i] == 127) return fail(h, LR_E_CONNECT, "malformed header line in the answer");
  v = colon + 1;
  vn = n - name_len - 1;
  trim(&v, &vn);
  switch (name_len) {
  case 10:
    if (lr_equals_ci(l, 10, "connection")) tokens(h, v, vn, connection_token);
    break;
  case 12:
    if (lr_equals_ci(l, 12, "content-type")) {
      h->ctype_off = (size_t)(v - h->head);
      h->ctype_len = vn;
    }
    break;
  case 14:
    if (lr_equals_ci(l, 14, "content-length")) return content_length(h, v, vn);
    break;
  case 17:
    if (lr_equals_ci(l, 17, "transfer-encoding")) {
      h->has_te = 1;
      h->chunked = 0;
      tokens(h, v, vn, te_token);
    }
    break;
  }
  return LR_H1_MORE;
}

/* The blank line after an answer's fields. */
static lr_h1_event end_of_head(lr_http1 *h) {
  int code = h->code;
  if (code < 200) {
    if (code == 101) return fail(h, LR_E_CONNECT, "the answer switched protocols (101), which was not asked for");
    if (++h->interim > LR_H1_MAX_INTERIM)
      return fail(h, LR_E_HTTP, "more than %d interim (1xx) answers before the final one", LR_H1_MAX_INTERIM);
    reset_answer(h);
    return LR_H1_MORE;
  }
  h->status = code;
  h->keep_alive = !h->conn_close && (h->minor >= 1 || h->conn_keep);
  if (code == 204 || code == 304) {
    h->state = S_DONE;
  } else if (h->has_te) {
    if (h->has_cl) h->keep_alive = 0; /* both framings: the connection cannot be trusted after it */
    h->content_length = -1;
    if (h->chunked) {
      h->state = S_CHUNK_SIZE;
      h->digits = -1;
    } else { /* a coding other than chunked last: the body ends with the connection */
      h->state = S_BODY_CLOSE;
      h->keep_alive = 0;
    }
  } else if (h->has_cl) {
    if ((uint64_t)h->content_length > h->max_body) return body_cap(h);
    h->remaining = (uint64_t)h->content_length;
    h->state = h->remaining ? S_BODY_CL : S_DONE;
  } else {
    h->state = S_BODY_CLOSE;
    h->keep_alive = 0;
  }
  return LR_H1_HEAD;
}

/* One complete head line, held in the head buffer from line_start. */
static lr_h1_event head_line(lr_http1 *h) {
  const char *l = h->head + h->line_start;
  size_t n = h->head_len - h->line_start - 1; /* without the LF */
  if (n && l[n - 1] == '\r') n--;
  h->line_start = h->head_len;
  if (h->state == S_STATUS) return status_line(h, l, n);
  if (n == 0) return end_of_head(h);
  return field_line(h, l, n);
}

static int grow(lr_http1 *h, size_t need) {
  size_t cap = h->head_cap ? h->head_cap : 1024;
  char *p;
  if (need <= h->head_cap) return 0;
  while (cap < need) cap *= 2;
  p = realloc(h->head, cap);
  if (!p) return -1;
  h->head = p;
  h->head_cap = cap;
  return 0;
}

static lr_h1_event read_head(lr_http1 *h, const char *buf, size_t len, size_t *used) {
  size_t at = 0;
  while (at < len) {
    const char *p = buf + at, *nl = memchr(p, '\n', len - at);
    size_t n = nl ? (size_t)(nl - p) + 1 : len - at;
    size_t before = h->head_len - h->line_start, i, line_err = 0, block_err = 0;
    lr_h1_event ev;
    *used = at;
    if (h->state == S_STATUS) /* garbage or HTTP/0.9 is refused at its first byte, not after 8 KiB */
      for (i = before; i < STATUS_PREFIX_LEN && i - before < n; i++) {
        char c = p[i - before], want = status_prefix[i];
        if (want == '#' ? (c < '0' || c > '9') : c != want) {
          *used = at + (i - before) + 1;
          return fail(h, LR_E_CONNECT, "not an HTTP/1.x answer: malformed status line");
        }
      }
    /* the byte that passes a cap: the line's (MAX + 2)th (MAX bytes, then a
     * CR or the LF may follow), or the block's (MAX_HEAD + 1)th */
    if (nl) {
      size_t content = before + n - 1;
      int cr = n >= 2 ? p[n - 2] == '\r' : (before && h->head[h->head_len - 1] == '\r');
      if (content - (size_t)cr > LR_H1_MAX_LINE) line_err = LR_H1_MAX_LINE + 2 - before;
    } else if (before + n > LR_H1_MAX_LINE + 1) {
      line_err = LR_H1_MAX_LINE + 2 - before;
    }
    if (h->head_len + n > LR_H1_MAX_HEAD) block_err = LR_H1_MAX_HEAD + 1 - h->head_len;
    if (line_err && (!block_err || line_err <= block_err)) {
      *used = at + line_err;
      return fail(h, LR_E_HTTP, "answer %s line longer than %d bytes",
                  h->state == S_STATUS ? "status" : "header", LR_H1_MAX_LINE);
    }
    if (block_err) {
      *used = at + block_err;
      return fail(h, LR_E_HTTP, "the answer's headers exceed 64 KiB (%d bytes)", LR_H1_MAX_HEAD);
    }
    if (grow(h, h->head_len + n))
      return fail(h, LR_E_CONNECT, "out of memory reading the answer's headers");
    memcpy(h->head + h->head_len, p, n);
    h->head_len += n;
    at += n;
    *used = at;
    if (!nl) break;
    ev = head_line(h);
    if (ev != LR_H1_MORE) return ev;
  }
  *used = at;
  return LR_H1_MORE;
}

static int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* A chunk-size line, byte by byte: hex digits, then extensions to the LF. */
static lr_h1_event chunk_size(lr_http1 *h, const char *buf, size_t len, size_t *used) {
  size_t i;
  for (i = 0; i < len; i++) {
    char c = buf[i];
    int d;
    if (c == '\n') {
      *used = i + 1;
      if (h->digits < 0) return fail(h, LR_E_CONNECT, "malformed chunk size in the answer");
      h->sub_len = 0;
      if (h->remaining == 0) {
        h->state = S_TRAILER;
        h->cr = 0;
        return LR_H1_MORE;
      }
      if (h->remaining > h->max_body - h->body_bytes) return body_cap(h);
      h->state = S_CHUNK_DATA;
      return LR_H1_MORE;
    }
    *used = i + 1; /* the byte an error is found at is taken */
    if (++h->sub_len > LR_H1_MAX_CHUNK_LINE)
      return fail(h, LR_E_HTTP, "answer chunk-size line longer than %d bytes", LR_H1_MAX_CHUNK_LINE);
    if (h->ext) continue;
    d = hex(c);
    if (d >= 0) {
      if (h->digits < 0) h->digits = 0;
      if (h->digits || d) {
        if (h->digits == 16) return fail(h, LR_E_CONNECT, "answer chunk size overflows 64 bits");
        h->digits++;
      }
      h->remaining = h->remaining << 4 | (uint64_t)d;
    } else if (h->digits >= 0 && (c == ';' || ows(c) || c == '\r')) {
      h->ext = 1;
    } else {
      return fail(h, LR_E_CONNECT, "malformed chunk size in the answer");
    }
  }
  *used = len;
  return LR_H1_MORE;
}

/* The CRLF (or a bare LF) after a chunk's data. */
static lr_h1_event chunk_end(lr_http1 *h, const char *buf, size_t len, size_t *used) {
  size_t i;
  for (i = 0; i < len; i++) {
    *used = i + 1;
    if (buf[i] == '\r' && !h->cr) {
      h->cr = 1;
    } else if (buf[i] == '\n') {
      h->state = S_CHUNK_SIZE;
      h->remaining = 0;
      h->digits = -1;
      h->ext = 0;
      h->sub_len = 0;
      return LR_H1_MORE;
    } else {
      return fail(h, LR_E_CONNECT, "malformed chunked body in the answer: no CRLF after a chunk");
    }
  }
  *used = len;
  return LR_H1_MORE;
}

/* Trailer lines, counted and dropped, up to the blank line. */
static lr_h1_event trailers(lr_http1 *h, const char *buf, size_t len, size_t *used) {
  size_t i;
  for (i = 0; i < len; i++) {
    char c = buf[i];
    *used = i + 1;
    if (++h->trailer_bytes > LR_H1_MAX_TRAILER)
      return fail(h, LR_E_HTTP, "answer trailers longer than %d bytes", LR_H1_MAX_TRAILER);
    if (c == '\n') {
      if (h->sub_len == 0 || (h->sub_len == 1 && h->cr)) {
        *used = i + 1;
        h->state = S_DONE;
        return LR_H1_DONE;
      }
      if (++h->trailer_lines > LR_H1_MAX_TRAILER_LINES)
        return fail(h, LR_E_HTTP, "the answer has more than %d trailer lines", LR_H1_MAX_TRAILER_LINES);
      h->sub_len = 0;
      h->cr = 0;
      continue;
    }
    h->sub_len++;
    h->cr = c == '\r';
  }
  *used = len;
  return LR_H1_MORE;
}

static lr_h1_event step(lr_http1 *h, const char *buf, size_t len, size_t *used, const char **body,
                        size_t *body_len) {
  uint64_t take;
  *used = 0;
  switch (h->state) {
  case S_STATUS:
  case S_HEADER:
    return read_head(h, buf, len, used);
  case S_BODY_CL:
  case S_CHUNK_DATA:
    if (len == 0) return LR_H1_MORE;
    take = h->remaining < len ? h->remaining : len;
    h->remaining -= take;
    if (h->remaining == 0) {
      h->state = h->state == S_BODY_CL ? S_DONE : S_CHUNK_END;
      h->cr = 0;
    }
    break;
  case S_BODY_CLOSE:
    if (len == 0) return LR_H1_MORE;
    if (h->body_bytes == h->max_body) return body_cap(h);
    take = h->max_body - h->body_bytes < len ? h->max_body - h->body_bytes : len;
    break;
  case S_CHUNK_SIZE:
    return chunk_size(h, buf, len, used);
  case S_CHUNK_END:
    return chunk_end(h, buf, len, used);
  case S_TRAILER:
    return trailers(h, buf, len, used);
  case S_DONE:
    return LR_H1_DONE;
  default:
    return LR_H1_ERROR;
  }
  h->body_bytes += take;
  *used = (size_t)take;
  *body = buf;
  *body_len = (size_t)take;
  return LR_H1_BODY;
}

lr_h1_event lr_http1_feed(lr_http1 *h, const char *buf, size_t len, size_t *used, const char **body,
                          size_t *body_len) {
  size_t at = 0, u;
  lr_h1_event ev;
  *body = NULL;
  *body_len = 0;
  /* framing steps that yield no event go on with the rest of the input */
  do {
    ev = step(h, buf + at, len - at, &u, body, body_len);
    at += u;
  } while (ev == LR_H1_MORE && at < len && h->state != S_ERROR);
  h->bytes_in += at;
  *used = at;
  return ev;
}

/* Which part of the answer the decoder is in, for people. */
static const char *part(const lr_http1 *h) {
  switch (h->state) {
  case S_STATUS:
  case S_HEADER:
    return "its headers";
  case S_TRAILER:
    return "its trailers";
  case S_DONE:
  case S_ERROR:
    return "its end";
  default:
    return "its body";
  }
}

lr_h1_event lr_http1_eof(lr_http1 *h) {
  switch (h->state) {
  case S_DONE:
  case S_ERROR:
    return h->state == S_DONE ? LR_H1_DONE : LR_H1_ERROR;
  case S_BODY_CLOSE:
    h->state = S_DONE;
    return LR_H1_DONE;
  case S_STATUS:
    if (h->bytes_in == 0) return fail(h, LR_E_CONNECT, "the connection closed before an answer came");
    break;
  case S_BODY_CL:
    return fail(h, LR_E_CONNECT, "the answer was cut in its body: %llu of %lld bytes came",
                (unsigned long long)h->body_bytes, (long long)h->content_length);
  }
  return fail(h, LR_E_CONNECT, "the answer was cut in %s", part(h));
}

lr_h1_event lr_http1_cut(lr_http1 *h, const char *reason) {
  if (h->state == S_DONE || h->state == S_ERROR) return h->state == S_DONE ? LR_H1_DONE : LR_H1_ERROR;
  if (h->state == S_STATUS && h->bytes_in == 0) return fail(h, LR_E_CONNECT, "no answer: %s", reason);
  return fail(h, LR_E_CONNECT, "the answer was cut in %s: %s", part(h), reason);
}

lr_error_kind lr_http1_timeout(const lr_http1 *h, lr_h1_timer timer, lr_h1_at at, double seconds, char *buf,
                               size_t n) {
  const char *where;
  if (at == LR_H1_AT_CONNECT) where = "connecting";
  else if (at == LR_H1_AT_SEND) where = "sending the request";
  else if (h->state == S_STATUS && h->bytes_in == 0) where = "waiting for the answer";
  else if (h->state == S_STATUS || h->state == S_HEADER) where = "reading the answer's headers";
  else if (h->state == S_TRAILER) where = "reading the answer's trailers";
  else where = "reading the answer's body";
  switch (timer) {
  case LR_H1_TIMER_TOTAL:
    snprintf(buf, n, "timeout.total (%.3g s) reached while %s", seconds, where);
    break;
  case LR_H1_TIMER_IDLE:
    snprintf(buf, n, "timeout: the stream was silent for idle (%.3g s)", seconds);
    break;
  case LR_H1_TIMER_CONNECT:
    snprintf(buf, n, "timeout: no connection within connect (%.3g s)", seconds);
    break;
  default:
    if (at == LR_H1_AT_SEND) snprintf(buf, n, "timeout: sending the request took longer than first_byte (%.3g s)", seconds);
    else if (h->bytes_in == 0) snprintf(buf, n, "timeout: no response within first_byte (%.3g s)", seconds);
    else snprintf(buf, n, "timeout: the answer's headers stalled for first_byte (%.3g s)", seconds);
    break;
  }
  return LR_E_TIMEOUT;
}
