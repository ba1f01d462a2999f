/* mock_net.c - event loop and connection state machine of the llmrelay mock
 * server (see mock_llm.c for behaviour).
 *
 * One epoll instance (level-triggered), non-blocking sockets, no threads, no
 * sleeps.  Timers (reply latency, slow stream chunks, abuse pacing, close
 * lingering) live in a min-heap of connections (mock_timer.c); the epoll_wait
 * timeout comes from its top.  SIGTERM/SIGINT arrive via
 * signalfd.
 *
 * Connection states:
 *   ST_READ    parse requests from the input buffer (requests on one
 *              connection are handled strictly in order; while a reply is
 *              being written the socket is not read: back-pressure)
 *   ST_DELAY   reply decided, waiting for its latency timer
 *   ST_STREAM  emitting SSE events (all at once, or one per timer tick)
 *   ST_HANG    never answered; only a peer close (EPOLLRDHUP) ends it
 *   ST_ABUSE   hostile framing (mock_abuse.c), paced by the timer or by what
 *              the peer reads; only a peer close ends it
 *   ST_CLOSING output done, write side shut down, input drained until the
 *              peer closes (bounded by a 2 s timer) so that no RST eats the
 *              last response
 */
#include "mock.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { TAG_CONN = 1, TAG_LISTEN, TAG_SIGNAL, TAG_PARENT };
#define IN_MIN_FREE 16384
#define BIG_BUF (256u * 1024u)
#define CLOSE_LINGER_US 2000000

static int tag_listen = TAG_LISTEN, tag_signal = TAG_SIGNAL,
           tag_parent = TAG_PARENT;
static int epfd = -1, lfd = -1, sfd = -1, spare_fd = -1, pfd = -1;
static struct buf scratch;
/* every open connection, for cleanup at exit only (never scanned per
 * request); each conn knows its index (aidx) for O(1) removal */
static struct conn **all;
static size_t all_n, all_cap;

int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ----------------------------------------------------------- connections */

static void conn_free(struct conn *c)
{
    timer_clear(c);
    close(c->fd);
    st.open_sockets--;
    if (c->counted)
        st.open_connections--;
    /* remove from the cleanup array: O(1) swap with the last entry */
    size_t i = c->aidx;
    all[i] = all[--all_n];
    all[i]->aidx = i;
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->pre);
    free(c->strm);
    free(c);
}

static void conn_close(struct conn *c) { conn_free(c); }

static void conn_reset(struct conn *c)
{
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    conn_free(c);
}

static void conn_events(struct conn *c)
{
    uint32_t ev = 0;
    int pending = c->out_off < c->out.len;
    if (pending)
        ev |= EPOLLOUT;
    switch (c->state) {
    case ST_READ:
        if (!pending && !c->peer_eof)
            ev |= EPOLLIN;
        break;
    case ST_DELAY:
    case ST_STREAM:
    case ST_HANG:
    case ST_ABUSE:
        if (!c->peer_eof)
            ev |= EPOLLRDHUP;
        break;
    case ST_CLOSING:
        ev |= EPOLLIN | EPOLLRDHUP;
        break;
    }
    if (ev != c->events) {
        struct epoll_event e = {.events = ev, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
        c->events = ev;
    }
}

/* 0 ok (maybe partial), -1 fatal */
static int conn_flush(struct conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    c->out.len = c->out_off = 0;
    if (c->out.cap > BIG_BUF)
        buf_free(&c->out);
    return 0;
}

/* 0 ok, -1 fatal; sets peer_eof on EOF */
static int conn_read(struct conn *c)
{
    for (int k = 0; k < 16; k++) {
        if (c->in.cap - c->in.len < IN_MIN_FREE) {
            if (c->in_start) {
                memmove(c->in.p, c->in.p + c->in_start,
                        c->in.len - c->in_start);
                c->in.len -= c->in_start;
                c->in_start = 0;
            }
            buf_reserve(&c->in, IN_MIN_FREE);
        }
        size_t room = c->in.cap - c->in.len;
        ssize_t n = recv(c->fd, c->in.p + c->in.len, room, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            if ((size_t)n < room)
                return 0;
            continue;
        }
        if (n == 0) {
            c->peer_eof = 1;
            return 0;
        }
        if (errno == EINTR)
            continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
    return 0;
}

static void start_closing(struct conn *c)
{
    if (c->peer_eof) {
        conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = ST_CLOSING;
    timer_set(c, now_us() + CLOSE_LINGER_US);
    conn_events(c);
}

/* send the decided reply now; returns -1 if the connection is gone */
static int reply_fire(struct conn *c)
{
    app_fired(c);
    if (c->rkind == RK_RESET) {
        conn_reset(c);
        return -1;
    }
    if (c->out.len == 0 && c->pre.cap > c->out.cap) {
        struct buf t = c->out; /* empty: swap instead of copying */
        c->out = c->pre;
        c->pre = t;
    } else {
        buf_put(&c->out, c->pre.p, c->pre.len);
    }
    c->pre.len = 0;
    if (c->pre.cap > BIG_BUF)
        buf_free(&c->pre);
    c->close_after |= c->rclose;
    c->state = c->rkind == RK_STREAM  ? ST_STREAM
               : c->rkind == RK_ABUSE ? ST_ABUSE
                                      : ST_READ;
    c->st_wait = 0;
    return 0;
}

static void stream_done(struct conn *c, int state)
{
    free(c->strm);
    c->strm = NULL;
    c->state = state;
}

static void stream_pump(struct conn *c)
{
    struct stream *s = c->strm;
    for (;;) {
        if (cfg.cut_after >= 0 && s->events >= cfg.cut_after) {
            st.cuts++;
            c->close_after = 1;
            stream_done(c, ST_READ);
            return;
        }
        if (cfg.end_after >= 0 && s->events >= cfg.end_after) {
            /* a clean end of the body, without finish_reason or [DONE] */
            if (s->chunked)
                buf_puts(&c->out, "0\r\n\r\n");
            else
                c->close_after = 1;
            stream_done(c, ST_READ);
            return;
        }
        if (cfg.error_after >= 0 && s->events >= cfg.error_after) {
            scratch.len = 0;
            stream_error_event(s, &scratch);
            if (s->chunked)
                buf_printf(&c->out, "%zx\r\n%.*s\r\n0\r\n\r\n", scratch.len,
                           (int)scratch.len, scratch.p);
            else {
                buf_put(&c->out, scratch.p, scratch.len);
                c->close_after = 1;
            }
            stream_done(c, ST_READ);
            return;
        }
        if (cfg.stall_after >= 0 && s->events >= cfg.stall_after) {
            st.hangs++;
            stream_done(c, ST_HANG);
            return;
        }
        if (!stream_next(s, &c->out, &scratch)) {
            stream_done(c, ST_READ);
            return;
        }
        if (cfg.chunk_ms > 0) {
            c->st_wait = 1;
            timer_set(c, now_us() + cfg.chunk_ms * 1000);
            return;
        }
        if (c->out.len - c->out_off > BIG_BUF)
            return;
    }
}

/* Drive the connection as far as possible without blocking. */
static void conn_run(struct conn *c)
{
    for (;;) {
        if (c->out_off < c->out.len) {
            if (conn_flush(c) < 0) {
                conn_close(c);
                return;
            }
            if (c->out_off < c->out.len)
                break; /* wait for EPOLLOUT */
        }
        if (c->state == ST_STREAM) {
            if (c->st_wait)
                break;
            stream_pump(c);
            continue;
        }
        if ((c->state == ST_HANG || c->state == ST_ABUSE) && c->peer_eof) {
            conn_close(c);
            return;
        }
        if (c->state == ST_ABUSE) {
            if (c->st_wait)
                break;
            int64_t wait = abuse_pump(c);
            if (wait > 0) {
                c->st_wait = 1;
                timer_set(c, now_us() + wait);
                continue; /* write this step */
            }
            break; /* endless output: one batch per EPOLLOUT, never a busy loop */
        }
        if (c->state != ST_READ)
            break;
        if (c->close_after) {
            start_closing(c);
            return;
        }
        char *base = c->in.p + c->in_start;
        int r = req_parse(&c->req, base, c->in.len - c->in_start);
        if (c->req.want_continue) {
            c->req.want_continue = 0;
            buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        }
        if (r == P_NEED) {
            if (c->out_off < c->out.len)
                continue;
            if (c->peer_eof) {
                conn_close(c);
                return;
            }
            break;
        }
        if (r == P_ERR) {
            int s = c->req.err_status;
            scratch.len = 0;
            error_json(&scratch, http_reason(s), strlen(http_reason(s)),
                       "invalid_request_error", NULL, NULL);
            http_head(&c->out, s, "application/json", (long long)scratch.len,
                      1, 0, NULL);
            buf_put(&c->out, scratch.p, scratch.len);
            c->close_after = 1;
            continue;
        }
        c->pre.len = 0;
        c->rdelay_ms = 0;
        c->rkind = RK_BUF;
        app_handle(c, base);
        c->in_start += c->req.consumed;
        if (c->in_start == c->in.len) {
            c->in_start = c->in.len = 0;
            if (c->in.cap > BIG_BUF)
                buf_free(&c->in);
        }
        req_reset(&c->req);
        if (c->rkind == RK_HANG) {
            c->state = ST_HANG;
        } else if (c->rdelay_ms > 0) {
            c->state = ST_DELAY;
            timer_set(c, now_us() + (int64_t)c->rdelay_ms * 1000);
        } else if (reply_fire(c) < 0) {
            return;
        }
    }
    conn_events(c);
}

static void conn_event(struct conn *c, uint32_t ev)
{
    if (ev & (EPOLLERR | EPOLLHUP)) {
        conn_close(c);
        return;
    }
    if (c->state == ST_CLOSING) {
        char junk[16384];
        for (int k = 0; k < 64; k++) {
            ssize_t n = recv(c->fd, junk, sizeof junk, 0);
            if (n > 0)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        conn_close(c);
        return;
    }
    if ((ev & EPOLLRDHUP) && c->state != ST_READ) {
        if (c->state == ST_HANG || c->state == ST_ABUSE) {
            conn_close(c);
            return;
        }
        c->peer_eof = 1;
    }
    if ((ev & EPOLLIN) && c->state == ST_READ && conn_read(c) < 0) {
        conn_close(c);
        return;
    }
    conn_run(c);
}

static void conn_timer(struct conn *c)
{
    switch (c->state) {
    case ST_DELAY:
        if (reply_fire(c) < 0)
            return;
        break;
    case ST_STREAM:
    case ST_ABUSE:
        c->st_wait = 0;
        break;
    case ST_CLOSING:
        conn_close(c);
        return;
    default:
        break;
    }
    conn_run(c);
}

static void do_accept(void)
{
    for (int k = 0; k < 128; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
                /* out of descriptors: accept and drop one so the listener
                 * does not spin */
                close(spare_fd);
                fd = accept(lfd, NULL, NULL);
                if (fd >= 0)
                    close(fd);
                spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            abort();
        if (all_n == all_cap) {
            all_cap = all_cap ? all_cap * 2 : 1024;
            all = realloc(all, all_cap * sizeof *all);
            if (!all)
                abort();
        }
        c->tag = TAG_CONN;
        c->aidx = all_n;
        all[all_n++] = c;
        c->fd = fd;
        c->hidx = -1;
        c->state = ST_READ;
        c->events = EPOLLIN;
        req_reset(&c->req);
        st.open_sockets++;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0)
            conn_close(c);
    }
}

int net_listen(int port)
{
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    /* a background job of a non-interactive shell starts with SIGINT
     * ignored; ignored signals never reach the signalfd */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sfd < 0 || epfd < 0 || lfd < 0)
        return -1;
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
        return -1;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &tag_listen};
    struct epoll_event s = {.events = EPOLLIN, .data.ptr = &tag_signal};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &e) < 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &s) < 0)
        return -1;
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (cfg.parent_pid > 0) {
        /* pidfd: readable once the process exits (no polling) */
        pfd = (int)syscall(SYS_pidfd_open, (pid_t)cfg.parent_pid, 0);
        struct epoll_event pe = {.events = EPOLLIN, .data.ptr = &tag_parent};
        if (pfd >= 0)
            epoll_ctl(epfd, EPOLL_CTL_ADD, pfd, &pe);
        else if (errno == ESRCH)
            return -2;
    }
    return ntohs(a.sin_port);
}

void net_loop(void)
{
    struct epoll_event evs[512];
    int64_t checked = 0;
    for (;;) {
        int timeout = -1;
        if (timer_first()) {
            int64_t d = timer_first()->deadline - now_us();
            timeout = d <= 0 ? 0 : (int)((d + 999) / 1000);
        }
        if (cfg.parent_pid > 0 && pfd < 0) { /* no pidfd: poll once a second */
            if (timeout < 0 || timeout > 1000)
                timeout = 1000;
            if (now_us() - checked >= 1000000) {
                checked = now_us();
                if (kill((pid_t)cfg.parent_pid, 0) < 0 && errno == ESRCH)
                    return;
            }
        }
        int n = epoll_wait(epfd, evs, 512, timeout);
        if (n < 0 && errno != EINTR)
            return;
        for (int i = 0; i < n; i++) {
            int tag = *(int *)evs[i].data.ptr;
            if (tag == TAG_LISTEN) {
                do_accept();
            } else if (tag == TAG_PARENT) {
                return;
            } else if (tag == TAG_SIGNAL) {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                    return;
            } else {
                conn_event(evs[i].data.ptr, evs[i].events);
            }
        }
        int64_t now = now_us();
        struct conn *c;
        while ((c = timer_first()) && c->deadline <= now) {
            timer_clear(c);
            conn_timer(c);
        }
    }
}

void net_cleanup(void)
{
    while (all_n)
        conn_free(all[all_n - 1]);
    free(all);
    timer_cleanup();
    buf_free(&scratch);
    close(lfd);
    close(sfd);
    close(epfd);
    if (spare_fd >= 0)
        close(spare_fd);
    if (pfd >= 0)
        close(pfd);
}
