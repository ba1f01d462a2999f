/* An incremental HTTP/1.1 RESPONSE decoder for executors that read raw
 * sockets (the OpenResty cosocket path): bytes in, in any split, and out come
 * the final answer's head (status, the fields the engine reads, the raw
 * header block for hints.c), the de-chunked body as slices of the input, the
 * end of the message, or an error with a kind (errors.h) and a message.
 * Interim 1xx answers are skipped. Sans-I/O: no clock, no I/O, no Lua.
 *
 * Every part of an answer is bounded, so a hostile upstream costs at most
 * these bytes (beyond the body, which max_body bounds):
 *   status line, each header line      8192 bytes (line end not counted)
 *   one answer's header block          64 KiB (65536 bytes, line ends counted)
 *   header fields in one answer        100
 *   interim (1xx) answers              8
 *   a chunk-size line, extensions too  1024 bytes
 *   a chunk size                       16 hex digits past leading zeros (64 bits;
 *                                      more is malformed, kind "connect")
 *   the trailer block                  8192 bytes and 32 lines
 *   the body (de-chunked)              max_body bytes
 * A cap passed is kind "http", as an answer over max_response_bytes is (the
 * relay ends the request); malformed framing and an answer cut short are
 * kind "connect" (this upstream is broken: another may answer). Both as the
 * libcurl executor reports them. */
#ifndef LR_HTTP1_H
#define LR_HTTP1_H
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define LR_H1_MAX_LINE 8192
#define LR_H1_MAX_HEAD 65536
#define LR_H1_MAX_FIELDS 100
#define LR_H1_MAX_INTERIM 8
#define LR_H1_MAX_CHUNK_LINE 1024
#define LR_H1_MAX_TRAILER 8192
#define LR_H1_MAX_TRAILER_LINES 32

typedef enum {
  LR_H1_MORE,  /* every byte given was taken: feed more (or lr_http1_eof) */
  LR_H1_HEAD,  /* the final answer's head is complete: the head fields are set */
  LR_H1_BODY,  /* body bytes: *body, *body_len (a slice of the input) */
  LR_H1_DONE,  /* the message ended; bytes after it were not taken */
  LR_H1_ERROR  /* kind and message are set; sticky */
} lr_h1_event;

/* Which limit ran out, for lr_http1_timeout. */
typedef enum { LR_H1_TIMER_TOTAL, LR_H1_TIMER_CONNECT, LR_H1_TIMER_FIRST_BYTE, LR_H1_TIMER_IDLE } lr_h1_timer;
/* Where the attempt was when it ran out: the decoder knows the answer's part. */
typedef enum { LR_H1_AT_CONNECT, LR_H1_AT_SEND, LR_H1_AT_ANSWER } lr_h1_at;

typedef struct lr_http1 {
  /* the final answer's head, once LR_H1_HEAD came (0 / -1 / NULL before) */
  int status;
  int keep_alive;          /* the connection may carry the next request once DONE */
  int chunked;             /* the body is chunked */
  int64_t content_length;  /* -1 none (chunked, close-delimited or no body) */
  char *head;              /* the raw header block: status line and fields, as received */
  size_t head_len;
  size_t ctype_off, ctype_len; /* Content-Type's value within head (len 0: none) */

  /* progress */
  int state;
  int code;                /* the status of the answer being read (a 1xx too) */
  int interim;             /* 1xx answers skipped */
  int fields;              /* header fields of the current answer */
  size_t line_start;       /* offset in head of the line being read */
  size_t head_cap;
  uint64_t bytes_in;       /* all bytes taken */
  uint64_t body_bytes;     /* body bytes handed out */
  uint64_t max_body;
  uint64_t remaining;      /* Content-Length or chunk bytes still to come */
  size_t sub_len;          /* the chunk-size or trailer line so far */
  size_t trailer_bytes;    /* the trailer block so far */
  int trailer_lines;
  int digits;              /* chunk-size hex digits past leading zeros (-1: none yet) */
  int ext;                 /* past the chunk size's digits */
  int cr;                  /* a CR came last (chunk data's end, trailer lines) */
  int minor;               /* HTTP/1.x */
  int conn_close, conn_keep, has_te, has_cl;

  lr_error_kind kind;      /* LR_E_NONE unless LR_H1_ERROR */
  char message[128];
} lr_http1;

/* max_body: the cap on the body's bytes (max_response_bytes). */
void lr_http1_init(lr_http1 *h, uint64_t max_body);
/* Frees the header block; safe on an unused decoder, and twice. */
void lr_http1_free(lr_http1 *h);
/* Takes bytes from buf[0..len) until one event; *used says how many. Call
 * again with the rest while it returns LR_H1_HEAD or LR_H1_BODY (a body
 * slice points into buf). LR_H1_MORE: all taken. LR_H1_DONE and LR_H1_ERROR
 * stick: every later call returns them again, taking nothing. */
lr_h1_event lr_http1_feed(lr_http1 *h, const char *buf, size_t len, size_t *used, const char **body,
                          size_t *body_len);
/* The connection closed: LR_H1_DONE (a close-delimited body ends here, or the
 * message had ended) or LR_H1_ERROR (the answer was cut). */
lr_h1_event lr_http1_eof(lr_http1 *h);
/* The connection failed (reason: the socket's error): LR_H1_ERROR, kind
 * "connect", the message says which part of the answer was cut. */
lr_h1_event lr_http1_cut(lr_http1 *h, const char *reason);
/* The attempt ran out of time: the message says which limit (seconds) and
 * where it was ("timeout.total (8 s) reached while reading the answer's
 * headers"). Returns LR_E_TIMEOUT. */
lr_error_kind lr_http1_timeout(const lr_http1 *h, lr_h1_timer timer, lr_h1_at at, double seconds, char *buf,
                               size_t n);

#endif
