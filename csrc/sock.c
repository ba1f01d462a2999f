/* The deadline-bounded client socket. See sock.h. TLS goes through OpenSSL
 * over a small BIO of our own that uses send(MSG_NOSIGNAL)/recv, so that a
 * peer gone mid-write is an error and never a SIGPIPE (OpenSSL's socket BIO
 * uses write()). */
#include "sock.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"

void lr_sock_init(lr_sock *s) {
  memset(s, 0, sizeof *s);
  s->fd = -1;
}

static int fail(char *err, size_t errlen, int code, const lr_sock *s, const char *fmt, const char *what) {
  char msg[200];
  snprintf(msg, sizeof msg, fmt, what);
  snprintf(err, errlen, "%s: %s", s->peer, msg);
  return code;
}

/* Waits until fd is ready for events or the deadline passes. */
static int wait_fd(lr_sock *s, short events, double deadline, const char *doing, char *err, size_t errlen) {
  for (;;) {
    struct pollfd p = {.fd = s->fd, .events = events, .revents = 0};
    double left = deadline - lr_now_mono();
    int ms, r;
    if (left <= 0) return fail(err, errlen, LR_SOCK_TIMEOUT, s, "timed out (%s)", doing);
    ms = (int)ceil(left * 1000);
    r = poll(&p, 1, ms);
    if (r > 0) return LR_SOCK_OK; /* an error or hang-up shows in the call that follows */
    if (r < 0 && errno != EINTR) return fail(err, errlen, LR_SOCK_IO, s, "poll: %s", strerror(errno));
  }
}

/* One address: a non-blocking connect finished by poll. */
static int connect_one(lr_sock *s, const struct addrinfo *ai, double deadline, char *err, size_t errlen) {
  int one = 1, soerr = 0, r;
  socklen_t sl = sizeof soerr;
  s->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (s->fd < 0) return fail(err, errlen, LR_SOCK_IO, s, "socket: %s", strerror(errno));
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(s->fd, ai->ai_addr, ai->ai_addrlen) == 0) return LR_SOCK_OK;
  if (errno != EINPROGRESS) return fail(err, errlen, LR_SOCK_IO, s, "connect: %s", strerror(errno));
  if ((r = wait_fd(s, POLLOUT, deadline, "connecting", err, errlen)) != LR_SOCK_OK) return r;
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
  if (soerr) return fail(err, errlen, LR_SOCK_IO, s, "connect: %s", strerror(soerr));
  return LR_SOCK_OK;
}

int lr_sock_connect(lr_sock *s, const char *host, int port, double deadline, char *err, size_t errlen) {
  struct addrinfo hints, *list = NULL, *ai;
  char service[16];
  int r = LR_SOCK_IO, g;
  snprintf(s->peer, sizeof s->peer, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
  snprintf(service, sizeof service, "%d", port);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  g = getaddrinfo(host, service, &hints, &list);
  if (g != 0) return fail(err, errlen, LR_SOCK_IO, s, "cannot resolve the host: %s", gai_strerror(g));
  for (ai = list; ai; ai = ai->ai_next) {
    r = connect_one(s, ai, deadline, err, errlen);
    if (r == LR_SOCK_OK || r == LR_SOCK_TIMEOUT) break;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
  }
  freeaddrinfo(list);
  return r;
}

/* ---- TLS ---------------------------------------------------------------- */

static int bio_write(BIO *b, const char *buf, int len) {
  ssize_t n = send((int)(intptr_t)BIO_get_data(b), buf, (size_t)len, MSG_NOSIGNAL);
  BIO_clear_retry_flags(b);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return (int)n;
}

static int bio_read(BIO *b, char *buf, int len) {
  ssize_t n = recv((int)(intptr_t)BIO_get_data(b), buf, (size_t)len, 0);
  BIO_clear_retry_flags(b);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

/* A method table per connection, freed with it: a process-wide one would
 * outlive the module when Lua unloads it (and show as a leak). */
static BIO_METHOD *new_method(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "llmrelay socket");
  if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) && BIO_meth_set_ctrl(m, bio_ctrl) &&
      BIO_meth_set_create(m, bio_create))
    return m;
  BIO_meth_free(m);
  return NULL;
}

/* Words the reason of a failed TLS call: the certificate check when that is
 * what failed, else OpenSSL's first queued error, else errno. */
static int tls_fail(lr_sock *s, SSL *ssl, int code, int ret, const char *doing, char *err, size_t errlen) {
  char why[160];
  unsigned long e = ERR_get_error();
  long v = ssl && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (v != X509_V_OK)
    snprintf(why, sizeof why, "certificate verify failed (%s)", X509_verify_cert_error_string(v));
  else if (e)
    ERR_error_string_n(e, why, sizeof why);
  else if (code == SSL_ERROR_ZERO_RETURN || (code == SSL_ERROR_SYSCALL && ret == 0))
    snprintf(why, sizeof why, "connection closed by the server");
  else
    snprintf(why, sizeof why, "%s", errno ? strerror(errno) : "failed");
  ERR_clear_error();
  snprintf(err, errlen, "%s: %s (%s)", s->peer, why, doing);
  return LR_SOCK_IO;
}

/* Runs one SSL call until it succeeds (returns its result), waiting on the
 * socket for what OpenSSL wants, up to the deadline. */
typedef int (*ssl_op)(SSL *ssl, void *buf, int len);
static int ssl_loop(lr_sock *s, ssl_op op, void *buf, int len, double deadline, const char *doing, char *err,
                    size_t errlen) {
  for (;;) {
    int ret, code, r;
    ERR_clear_error();
    errno = 0;
    ret = op((SSL *)s->ssl, buf, len);
    if (ret > 0) return ret;
    code = SSL_get_error((SSL *)s->ssl, ret);
    if (code == SSL_ERROR_WANT_READ)
      r = wait_fd(s, POLLIN, deadline, doing, err, errlen);
    else if (code == SSL_ERROR_WANT_WRITE)
      r = wait_fd(s, POLLOUT, deadline, doing, err, errlen);
    else
      return tls_fail(s, (SSL *)s->ssl, code, ret, doing, err, errlen);
    if (r != LR_SOCK_OK) return r;
  }
}

static int op_connect(SSL *ssl, void *buf, int len) {
  (void)buf, (void)len;
  return SSL_connect(ssl);
}
static int op_read(SSL *ssl, void *buf, int len) { return SSL_read(ssl, buf, len); }
static int op_write(SSL *ssl, void *buf, int len) { return SSL_write(ssl, buf, len); }

/* An SSL for this socket: the context (freed with the SSL), the CA, the
 * name or IP the certificate must carry, SNI for names. NULL: err says why. */
static SSL *new_ssl(lr_sock *s, const char *host, int verify, const char *ca_file, char *err, size_t errlen) {
  unsigned char ip[16];
  int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *ssl = NULL;
  BIO *bio = NULL;
  BIO_METHOD *m = s->bio_method = new_method();
  int ok = ctx && m && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (ok && verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1 : SSL_CTX_set_default_verify_paths(ctx) != 1) {
      ERR_clear_error();
      snprintf(err, errlen, "%s: TLS: cannot load the CA file %s", s->peer, ca_file ? ca_file : "(system store)");
      SSL_CTX_free(ctx);
      return NULL;
    }
  }
  ok = ok && (ssl = SSL_new(ctx)) != NULL;
  if (ok && verify)
    ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 : SSL_set1_host(ssl, host) == 1;
  if (ok && !is_ip) ok = SSL_set_tlsext_host_name(ssl, host) == 1;
  ok = ok && (bio = BIO_new(m)) != NULL;
  if (ok) {
    BIO_set_data(bio, (void *)(intptr_t)s->fd);
    SSL_set_bio(ssl, bio, bio);
  }
  SSL_CTX_free(ctx); /* the SSL holds its own reference */
  if (ok) return ssl;
  SSL_free(ssl);
  tls_fail(s, NULL, SSL_ERROR_SSL, 0, "setup", err, errlen);
  return NULL;
}

int lr_sock_tls(lr_sock *s, const char *host, int verify, const char *ca_file, double deadline, char *err,
                size_t errlen) {
  int r;
  if (!(s->ssl = new_ssl(s, host, verify, ca_file, err, errlen))) return LR_SOCK_IO;
  r = ssl_loop(s, op_connect, NULL, 0, deadline, "TLS handshake", err, errlen);
  return r > 0 ? LR_SOCK_OK : r;
}

/* ---- bytes -------------------------------------------------------------- */

int lr_sock_write(lr_sock *s, const char *buf, size_t len, double deadline, char *err, size_t errlen) {
  while (len > 0) {
    int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
    ssize_t n;
    if (s->ssl) {
      int r = ssl_loop(s, op_write, (void *)buf, chunk, deadline, "sending", err, errlen);
      if (r < 0) return r;
      n = r;
    } else {
      n = send(s->fd, buf, (size_t)chunk, MSG_NOSIGNAL);
      if (n < 0) {
        int r;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(err, errlen, LR_SOCK_IO, s, "send: %s", strerror(errno));
        if ((r = wait_fd(s, POLLOUT, deadline, "sending", err, errlen)) != LR_SOCK_OK) return r;
        continue;
      }
    }
    buf += n;
    len -= (size_t)n;
  }
  return LR_SOCK_OK;
}

long lr_sock_read(lr_sock *s, char *buf, size_t cap, double deadline, char *err, size_t errlen) {
  int chunk = cap > (1u << 30) ? 1 << 30 : (int)cap;
  if (s->ssl) return ssl_loop(s, op_read, buf, chunk, deadline, "waiting for the reply", err, errlen);
  for (;;) {
    ssize_t n = recv(s->fd, buf, (size_t)chunk, 0);
    int r;
    if (n > 0) return (long)n;
    if (n == 0) return fail(err, errlen, LR_SOCK_IO, s, "%s", "connection closed by the server");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(err, errlen, LR_SOCK_IO, s, "recv: %s", strerror(errno));
    if ((r = wait_fd(s, POLLIN, deadline, "waiting for the reply", err, errlen)) != LR_SOCK_OK) return r;
  }
}

void lr_sock_close(lr_sock *s) {
  if (s->ssl) {
    SSL_shutdown((SSL *)s->ssl); /* one close_notify, not waited for */
    SSL_free((SSL *)s->ssl);
    ERR_clear_error();
    s->ssl = NULL;
  }
  BIO_meth_free(s->bio_method); /* after the SSL and its BIO */
  s->bio_method = NULL;
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
}
