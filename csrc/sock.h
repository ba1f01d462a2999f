/* A small blocking TCP (and TLS) client socket where every call is bounded by
 * a deadline: the fd is non-blocking and each wait is a poll() up to the
 * deadline (monotonic seconds, clock.h). For the plain-Lua Redis client
 * (l_redis.c); no Lua, no policy.
 *
 * Every function returns LR_SOCK_OK (or, for lr_sock_read, the bytes read),
 * LR_SOCK_TIMEOUT or LR_SOCK_IO, and on failure writes a message into err
 * (host:port and the reason; never data that was sent). After a failure the
 * socket is unusable: close it. Writes never raise SIGPIPE. */
#ifndef LR_SOCK_H
#define LR_SOCK_H
#include <stddef.h>

enum { LR_SOCK_OK = 0, LR_SOCK_TIMEOUT = -1, LR_SOCK_IO = -2 };

typedef struct lr_sock {
  int fd;    /* -1 when closed */
  void *ssl; /* SSL *, once lr_sock_tls succeeded */
  void *bio_method; /* BIO_METHOD * of the socket's BIO */
  char peer[80]; /* host:port, for messages */
} lr_sock;

void lr_sock_init(lr_sock *s);
/* host: a name (getaddrinfo: a name lookup itself is not bounded by the
 * deadline) or an IPv4/IPv6 literal; tries each address until one connects.
 * TCP_NODELAY is set. */
int lr_sock_connect(lr_sock *s, const char *host, int port, double deadline, char *err, size_t errlen);
/* The TLS handshake over a connected socket. verify: check the certificate
 * chain against ca_file (PEM; NULL: the system store) and that it names host
 * (an IP literal is checked as an IP address). */
int lr_sock_tls(lr_sock *s, const char *host, int verify, const char *ca_file, double deadline, char *err,
                size_t errlen);
int lr_sock_write(lr_sock *s, const char *buf, size_t len, double deadline, char *err, size_t errlen);
/* Reads what is there (at least one byte, waiting up to the deadline):
 * returns the count, or LR_SOCK_TIMEOUT / LR_SOCK_IO (the peer closing is IO). */
long lr_sock_read(lr_sock *s, char *buf, size_t cap, double deadline, char *err, size_t errlen);
/* Safe twice. */
void lr_sock_close(lr_sock *s);

#endif
