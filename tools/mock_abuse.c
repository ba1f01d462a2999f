/* mock_abuse.c - hostile HTTP/1.1 response framing for the llmrelay mock
 * server (--abuse MODE, see mock_llm.c): the fixtures of the clients'
 * hardening specs.  An abused answer replaces a chat request's 200; the
 * endless modes go on until the peer closes, paced by the connection's timer
 * (mock_net.c), so one abused connection never stalls the others.  The mock
 * stays bounded: at most ABUSE_FILL + one step of output waits per
 * connection whatever the peer reads.
 */
#include "mock.h"

#include <string.h>

#define ABUSE_FILL (64u * 1024u)   /* '1's queued per write (chunk-size-endless) */
#define HUGE_LINE (200u * 1024u)   /* header-line-huge: bytes of the X-Huge line */
#define DRIP_US 2000000            /* headers-drip: one header byte every 2 s */
#define CONTINUE_US 50000          /* continue-endless: a 100 every 50 ms */
#define TRAILER_US 100000          /* trailers-endless: a trailer every 100 ms */

static const char *const names[] = {
    [AB_CHUNK_SIZE] = "chunk-size-endless", [AB_HEADERS_DRIP] = "headers-drip",
    [AB_CONTINUE] = "continue-endless",     [AB_TRAILERS] = "trailers-endless",
    [AB_HEADER_HUGE] = "header-line-huge",
};

static const char chunked_head[] = "HTTP/1.1 200 OK\r\n"
                                   "Content-Type: application/json\r\n"
                                   "Transfer-Encoding: chunked\r\n";

int abuse_mode(const char *name)
{
    for (int m = AB_CHUNK_SIZE; m <= AB_HEADER_HUGE; m++)
        if (!strcmp(name, names[m]))
            return m;
    return -1;
}

void abuse_begin(struct conn *c, const struct buf *body, const char *hdrs)
{
    struct buf *p = &c->pre;
    c->abuse_n = 0;
    c->rkind = RK_ABUSE;
    c->rstatus = 0; /* an answer that never ends has no status to count */
    switch (cfg.abuse) {
    case AB_CHUNK_SIZE:
        buf_puts(p, chunked_head);
        buf_puts(p, hdrs);
        buf_puts(p, "\r\n");
        break;
    case AB_HEADERS_DRIP:
        buf_puts(p, "HTTP/1.1 200 OK\r\n");
        break;
    case AB_CONTINUE:
        break; /* the first 100 goes out at once (abuse_pump) */
    case AB_TRAILERS:
        buf_puts(p, chunked_head);
        buf_puts(p, hdrs);
        buf_printf(p, "\r\n%zx\r\n", body->len);
        buf_put(p, body->p, body->len);
        buf_puts(p, "\r\n0\r\n");
        break;
    case AB_HEADER_HUGE: {
        struct buf x = {0};
        buf_puts(&x, hdrs);
        buf_puts(&x, "X-Huge: ");
        buf_reserve(&x, HUGE_LINE);
        memset(x.p + x.len, 'a', HUGE_LINE);
        x.len += HUGE_LINE;
        buf_put(&x, "\r\n", 3); /* with its NUL: http_head takes a string */
        http_head(p, 200, "application/json", (long long)body->len, c->rclose,
                  c->req.minor == 0, x.p);
        buf_put(p, body->p, body->len);
        buf_free(&x);
        c->rkind = RK_BUF;
        c->rstatus = 200;
        break;
    }
    }
}

int64_t abuse_pump(struct conn *c)
{
    static const char drip[] = "X-Drip: y\r\n";
    struct buf *o = &c->out;
    int full = o->len - c->out_off >= ABUSE_FILL; /* the peer does not read */
    switch (cfg.abuse) {
    case AB_CHUNK_SIZE:
        if (!full) {
            buf_reserve(o, ABUSE_FILL);
            memset(o->p + o->len, '1', ABUSE_FILL);
            o->len += ABUSE_FILL;
        }
        return 0;
    case AB_HEADERS_DRIP:
        if (!full)
            buf_put(o, &drip[c->abuse_n++ % (sizeof drip - 1)], 1);
        return DRIP_US;
    case AB_CONTINUE:
        if (!full)
            buf_puts(o, "HTTP/1.1 100 Continue\r\n\r\n");
        return CONTINUE_US;
    case AB_TRAILERS:
        if (!full)
            buf_puts(o, "X-T: y\r\n");
        return TRAILER_US;
    }
    return 0;
}
