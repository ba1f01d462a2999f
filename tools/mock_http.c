/* mock_http.c - byte buffers, an incremental HTTP/1.x request parser and
 * response heads for the llmrelay mock server (see mock_llm.c).
 *
 * The parser is restartable: req_parse() is called again with the same (or a
 * longer) input after every read and keeps its progress in struct req, so a
 * request is never scanned twice.  Limits: request line + headers <= HDR_CAP
 * (431 past it), decoded body <= BODY_CAP (413).  Malformed input -> 400;
 * unsupported Transfer-Encoding -> 501.  Lines may end in CRLF or bare LF.
 * Chunked bodies are decoded in place (the decoded body is contiguous at
 * body_off; decoding never moves data forward).
 */
#include "mock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- buffers */

void buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t need = b->len + extra, cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fputs("mock-llm: out of memory\n", stderr);
        abort();
    }
    b->p = p;
    b->cap = cap;
}

void buf_put(struct buf *b, const void *s, size_t n)
{
    if (!n)
        return;
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void buf_puts(struct buf *b, const char *s) { buf_put(b, s, strlen(s)); }

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    buf_reserve(b, 256);
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        buf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void buf_json(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(b, n + 16);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            buf_put(b, e, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            buf_put(b, e, 6);
        } else {
            buf_reserve(b, 1);
            b->p[b->len++] = (char)ch;
        }
    }
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ----------------------------------------------------------------- parser */

enum { CS_SIZE, CS_DATA, CS_DATA_END, CS_TRAILER };

void req_reset(struct req *r)
{
    memset(r, 0, sizeof *r);
    r->clen = -1;
}

int is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return 1;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int fail(struct req *r, int status)
{
    r->err_status = status;
    return P_ERR;
}

static int name_is(const char *p, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(p, want, n) == 0;
}

/* comma separated token list contains tok (case-insensitive) */
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t i = 0, tl = strlen(tok);
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return 1;
    }
    return 0;
}

/* Find the end of the header block; *end = offset just past it. */
static int find_head_end(struct req *r, const char *p, size_t n, size_t *end)
{
    size_t i = r->scan > r->lead ? r->scan : r->lead;
    for (; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 >= n)
            break;
        if (p[i + 1] == '\n') {
            *end = i + 2;
            return 1;
        }
        if (p[i + 1] == '\r') {
            if (i + 2 >= n)
                break;
            if (p[i + 2] == '\n') {
                *end = i + 3;
                return 1;
            }
        }
    }
    r->scan = i;
    return 0;
}

/* [s, *le) is the line content without CR/LF; returns offset of next line */
static size_t line_at(const char *p, size_t s, size_t lim, size_t *le)
{
    const char *nl = memchr(p + s, '\n', lim - s);
    size_t e = nl ? (size_t)(nl - p) : lim;
    *le = (e > s && p[e - 1] == '\r') ? e - 1 : e;
    return nl ? e + 1 : lim;
}

static int parse_request_line(struct req *r, const char *p, size_t s,
                              size_t le)
{
    size_t i = s;
    while (i < le && is_tchar((unsigned char)p[i]))
        i++;
    r->meth_len = i - s;
    if (!r->meth_len || i >= le || p[i] != ' ')
        return 0;
    if (r->meth_len == 3 && memcmp(p + s, "GET", 3) == 0)
        r->method = M_GET;
    else if (r->meth_len == 4 && memcmp(p + s, "POST", 4) == 0)
        r->method = M_POST;
    else
        r->method = M_OTHER;
    size_t ts = ++i;
    while (i < le && p[i] != ' ') {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c == 0x7f)
            return 0;
        i++;
    }
    size_t te = i;
    if (te == ts || i >= le)
        return 0;
    i++;
    if (le - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0 ||
        (p[i + 7] != '0' && p[i + 7] != '1'))
        return 0;
    r->minor = p[i + 7] - '0';
    /* absolute-form: skip scheme://authority */
    if (p[ts] != '/') {
        const char *ss = memchr(p + ts, '/', te - ts);
        if (!ss || ss + 1 >= p + te || ss[1] != '/' || ss == p + ts ||
            ss[-1] != ':')
            return 0;
        const char *ps = memchr(ss + 2, '/', (size_t)(p + te - (ss + 2)));
        ts = ps ? (size_t)(ps - p) : te;
    }
    const char *q = memchr(p + ts, '?', te - ts);
    size_t pe = q ? (size_t)(q - p) : te;
    r->path_off = ts;
    r->path_len = pe - ts;
    if (q) {
        r->query_off = pe + 1;
        r->query_len = te - pe - 1;
    }
    return 1;
}

static int parse_head(struct req *r, const char *p, size_t hend)
{
    size_t le, pos = line_at(p, r->lead, hend, &le);
    if (!parse_request_line(r, p, r->lead, le))
        return fail(r, 400);
    r->keep_alive = r->minor == 1;
    int te_seen = 0;
    for (;;) {
        size_t s = pos;
        pos = line_at(p, s, hend, &le);
        if (le == s)
            break; /* empty line: end of headers */
        if (p[s] == ' ' || p[s] == '\t')
            return fail(r, 400); /* obsolete line folding */
        size_t i = s;
        while (i < le && is_tchar((unsigned char)p[i]))
            i++;
        if (i == s || i >= le || p[i] != ':')
            return fail(r, 400);
        size_t nl = i - s, vs = i + 1, ve = le;
        while (vs < ve && (p[vs] == ' ' || p[vs] == '\t'))
            vs++;
        while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
            ve--;
        for (size_t k = vs; k < ve; k++) {
            unsigned char c = (unsigned char)p[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return fail(r, 400);
        }
        const char *n = p + s, *v = p + vs;
        size_t vl = ve - vs;
        if (name_is(n, nl, "content-length")) {
            if (!vl || vl > 15)
                return fail(r, 400);
            long long x = 0;
            for (size_t k = 0; k < vl; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return fail(r, 400);
                x = x * 10 + (v[k] - '0');
            }
            if (r->clen >= 0 && r->clen != x)
                return fail(r, 400);
            r->clen = x;
        } else if (name_is(n, nl, "transfer-encoding")) {
            if (te_seen || !name_is(v, vl, "chunked"))
                return fail(r, 501);
            te_seen = r->chunked = 1;
        } else if (name_is(n, nl, "connection")) {
            if (has_token(v, vl, "close"))
                r->keep_alive = 0;
            else if (has_token(v, vl, "keep-alive"))
                r->keep_alive = 1;
        } else if (name_is(n, nl, "expect")) {
            if (name_is(v, vl, "100-continue"))
                r->expect_continue = 1;
        } else if (name_is(n, nl, cfg.auth_header ? cfg.auth_header : "authorization")) {
            r->has_auth = 1;
            r->auth_off = vs;
            r->auth_len = vl;
        }
    }
    if (r->chunked && (r->clen >= 0 || r->minor == 0))
        return fail(r, 400);
    if (r->clen > (long long)BODY_CAP)
        return fail(r, 413);
    return P_DONE;
}

static int parse_chunked(struct req *r, char *p, size_t n)
{
    for (;;) {
        switch (r->cstate) {
        case CS_SIZE: {
            const char *nl = memchr(p + r->crd, '\n', n - r->crd);
            if (!nl)
                return n - r->crd > 1024 ? fail(r, 400) : P_NEED;
            size_t le, next = line_at(p, r->crd, n, &le), i = r->crd;
            size_t size = 0, digits = 0;
            for (; i < le; i++, digits++) {
                int c = p[i], d;
                if (c >= '0' && c <= '9')
                    d = c - '0';
                else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
                    d = (c | 0x20) - 'a' + 10;
                else
                    break;
                if (size > BODY_CAP)
                    return fail(r, 413);
                size = size * 16 + (size_t)d;
            }
            if (!digits || (i < le && p[i] != ';' && p[i] != ' ' &&
                            p[i] != '\t'))
                return fail(r, 400);
            r->crd = next;
            if (size == 0) {
                r->cstate = CS_TRAILER;
                r->tr_start = next;
                break;
            }
            if (r->cwr - r->body_off + size > BODY_CAP)
                return fail(r, 413);
            r->crem = size;
            r->cstate = CS_DATA;
            break;
        }
        case CS_DATA: {
            size_t take = n - r->crd;
            if (take > r->crem)
                take = r->crem;
            if (r->cwr != r->crd)
                memmove(p + r->cwr, p + r->crd, take);
            r->cwr += take;
            r->crd += take;
            r->crem -= take;
            if (r->crem)
                return P_NEED;
            r->cstate = CS_DATA_END;
            break;
        }
        case CS_DATA_END:
            if (r->crd >= n)
                return P_NEED;
            if (p[r->crd] == '\r') {
                if (r->crd + 1 >= n)
                    return P_NEED;
                if (p[r->crd + 1] != '\n')
                    return fail(r, 400);
                r->crd++;
            } else if (p[r->crd] != '\n') {
                return fail(r, 400);
            }
            r->crd++;
            r->cstate = CS_SIZE;
            break;
        case CS_TRAILER: {
            const char *nl = memchr(p + r->crd, '\n', n - r->crd);
            if (!nl)
                return n - r->tr_start > HDR_CAP ? fail(r, 431) : P_NEED;
            size_t le, next = line_at(p, r->crd, n, &le);
            if (le == r->crd) {
                r->body_len = r->cwr - r->body_off;
                r->consumed = next;
                return P_DONE;
            }
            r->crd = next;
            break;
        }
        }
    }
}

int req_parse(struct req *r, char *p, size_t n)
{
    if (r->phase == 0) {
        while (r->lead < n && (p[r->lead] == '\r' || p[r->lead] == '\n'))
            r->lead++;
        size_t hend;
        if (!find_head_end(r, p, n, &hend))
            return n - r->lead > HDR_CAP ? fail(r, 431) : P_NEED;
        if (hend - r->lead > HDR_CAP)
            return fail(r, 431);
        if (parse_head(r, p, hend) != P_DONE)
            return P_ERR;
        r->phase = 1;
        r->body_off = r->crd = r->cwr = hend;
        if (r->expect_continue && r->minor == 1 && n == hend &&
            (r->chunked || r->clen > 0))
            r->want_continue = 1;
    }
    if (r->chunked)
        return parse_chunked(r, p, n);
    size_t cl = r->clen > 0 ? (size_t)r->clen : 0;
    if (n - r->body_off < cl)
        return P_NEED;
    r->body_len = cl;
    r->consumed = r->body_off + cl;
    return P_DONE;
}

/* -------------------------------------------------------------- responses */

const char *http_reason(int s)
{
    switch (s) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return s >= 500 ? "Server Error" : "Unknown";
    }
}

void http_head(struct buf *b, int status, const char *ctype, long long clen,
               int close, int http10, const char *extra)
{
    buf_printf(b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status,
               http_reason(status), ctype);
    if (clen >= 0)
        buf_printf(b, "Content-Length: %lld\r\n", clen);
    else if (clen == -1)
        buf_puts(b, "Transfer-Encoding: chunked\r\n");
    if (close)
        buf_puts(b, "Connection: close\r\n");
    else if (http10)
        buf_puts(b, "Connection: keep-alive\r\n");
    if (extra)
        buf_puts(b, extra);
    buf_puts(b, "\r\n");
}
