/* A RESP2 codec for talking to redis-server from either executor. Sans-I/O:
 * no clock, no I/O, no Lua, no allocation.
 *
 * Encoder: a command as an array of bulk strings (binary-safe arguments).
 *
 * Decoder: one reply at a time, fed slices of any size (byte by byte works);
 * it answers MORE (all bytes taken, feed more), DONE (one reply complete,
 * *used says how many bytes of this slice it took; the next reply starts
 * right after them) or ERROR (message says what was wrong; sticky).
 *
 * Memory contract. The caller gives, at init, two buffers it owns and keeps
 * alive as long as the decoder: `elems` (max_elems slots) and `arena`
 * (arena_cap bytes). The decoder never allocates and never keeps a pointer
 * into the bytes fed to it: the payload of every simple string, error and
 * bulk string is copied into the arena. Once lr_resp_feed returned DONE the
 * reply is d->elems[0 .. d->n_elems), in pre-order: an array element is
 * followed by its `children` subtrees. Each element's `str` points into the
 * arena (NULL for integers, arrays and nils) and `len` is its byte length;
 * strings are not NUL-terminated. These stay valid until lr_resp_next (which
 * starts the next reply and reuses both buffers) or until the caller frees
 * the buffers; there is nothing to free in the decoder itself.
 *
 * Caps, each a protocol error when passed (checked at the byte that passes
 * it, so the outcome is the same however the input is split):
 *   a line: type byte + text, CRLF not counted   LR_RESP_MAX_LINE (512) bytes
 *   an integer, a bulk or array length           must fit in int64
 *   a bulk string                                max_bulk (init) bytes
 *   nested arrays                                LR_RESP_MAX_DEPTH (8)
 *   elements in one reply (arrays, nils count)   max_elems (init)
 *   string bytes in one reply                    arena_cap (init) */
#ifndef LR_RESP_H
#define LR_RESP_H
#include <stddef.h>
#include <stdint.h>

#define LR_RESP_MAX_LINE 512
#define LR_RESP_MAX_DEPTH 8
#define LR_RESP_DEFAULT_MAX_BULK ((size_t)1 << 20)
#define LR_RESP_DEFAULT_MAX_ELEMS 4096

typedef enum {
  LR_RESP_SIMPLE,    /* +OK */
  LR_RESP_ERROR_STR, /* -ERR ... (a reply, not a protocol error) */
  LR_RESP_INTEGER,   /* :42 */
  LR_RESP_BULK,      /* $3 foo */
  LR_RESP_ARRAY,     /* *N followed by N elements */
  LR_RESP_NIL_BULK,  /* $-1 */
  LR_RESP_NIL_ARRAY  /* *-1 */
} lr_resp_type;

typedef struct lr_resp_elem {
  lr_resp_type type;
  int64_t integer;  /* INTEGER: the value; ARRAY: the number of children */
  const char *str;  /* SIMPLE, ERROR_STR, BULK: into the arena; else NULL */
  size_t len;
} lr_resp_elem;

typedef enum {
  LR_RESP_MORE,  /* every byte given was taken: feed more */
  LR_RESP_DONE,  /* one reply complete: d->elems[0..n_elems); sticky until lr_resp_next */
  LR_RESP_ERROR  /* d->message says what; sticky */
} lr_resp_event;

typedef struct lr_resp {
  lr_resp_elem *elems; /* the caller's */
  size_t max_elems, n_elems;
  char *arena;         /* the caller's */
  size_t arena_cap, arena_len;
  size_t max_bulk;

  /* progress */
  int state;
  char line[LR_RESP_MAX_LINE]; /* the line being read, type byte first */
  size_t line_len;
  uint64_t bulk_left;          /* payload bytes of the bulk being read */
  int depth;                   /* open arrays */
  int64_t left[LR_RESP_MAX_DEPTH]; /* children still to come at each open level */
  uint64_t bytes_in;           /* bytes taken for this reply */
  char message[96];
} lr_resp;

/* max_bulk: the largest bulk string; 0 means LR_RESP_DEFAULT_MAX_BULK. */
void lr_resp_init(lr_resp *d, lr_resp_elem *elems, size_t max_elems, char *arena, size_t arena_cap,
                  size_t max_bulk);
/* Starts the next reply after DONE (the previous one's elements become
 * invalid). After ERROR the connection is out of step: close it instead. */
void lr_resp_next(lr_resp *d);
/* Takes bytes from buf[0..len) until a reply is complete or an error; *used
 * says how many. MORE: all taken. Never reads past buf + len. */
lr_resp_event lr_resp_feed(lr_resp *d, const char *buf, size_t len, size_t *used);

/* Writes the command argv[0..argc) (argl: the lengths) into out[0..cap) as
 * RESP (`*N\r\n$len\r\narg\r\n...`) when it fits, and returns the bytes it
 * needs either way: when that is over cap, nothing is written; grow and
 * call again. out may be NULL when cap is 0. */
size_t lr_resp_encode(char *out, size_t cap, size_t argc, const char *const *argv, const size_t *argl);

#endif
