/* Fuzz target: the RESP2 decoder, fed the input whole and again cut where the
 * first byte says (or byte by byte); replies are read back to back until the
 * input ends or an error. Both runs must tell the same story (each reply's
 * elements, the bytes each took, the error). A reply that is an array of bulk
 * strings, re-encoded as a command, must decode to the same. The first two
 * bytes are settings, the rest is what the server sent:
 *   byte 0: the cut point, scaled to the input's length
 *   byte 1: bits 0-3 max_elems - 1 (bit 4: the default 4096); bits 5-6 the
 *           bulk cap (8, 64, 300, the default); bit 7 byte by byte
 * The arena is 512 bytes, so its cap is reached too.
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -Icsrc ...
 * elsewhere: add -DLR_FUZZ_STANDALONE for a plain main (fuzz.h). */
#include "fuzz.h"
#include "resp.h"

#define ARENA 512

typedef struct caps {
  size_t max_elems, max_bulk;
} caps;

NO_COVERAGE static void put_reply(const lr_resp *d, fuzz_buf *t) {
  for (size_t i = 0; i < d->n_elems; i++) {
    const lr_resp_elem *e = &d->elems[i];
    int64_t head[3] = {(int64_t)e->type, e->integer, (int64_t)e->len};
    fuzz_put(t, head, sizeof head);
    if (e->str) {
      REQUIRE(e->str >= d->arena && e->str + e->len <= d->arena + d->arena_len);
      fuzz_put(t, e->str, e->len);
    } else
      REQUIRE(e->type != LR_RESP_SIMPLE && e->type != LR_RESP_ERROR_STR && e->type != LR_RESP_BULK);
  }
}

/* An array of bulk strings, encoded as a command, decodes to itself. */
NO_COVERAGE static void reencode(const lr_resp *d, caps c) {
  size_t argc, i, n, u;
  const char **argv;
  size_t *argl;
  if (d->elems[0].type != LR_RESP_ARRAY) return;
  argc = (size_t)d->elems[0].integer;
  if (d->n_elems != argc + 1) return;
  for (i = 1; i <= argc; i++)
    if (d->elems[i].type != LR_RESP_BULK) return;
  argv = malloc((argc + 1) * sizeof *argv);
  argl = malloc((argc + 1) * sizeof *argl);
  if (!argv || !argl) abort();
  for (i = 0; i < argc; i++) {
    argv[i] = d->elems[i + 1].str;
    argl[i] = d->elems[i + 1].len;
  }
  n = lr_resp_encode(NULL, 0, argc, argv, argl);
  char *out = malloc(n);
  lr_resp_elem *elems = malloc(c.max_elems * sizeof *elems);
  char *arena = malloc(ARENA);
  if (!out || !elems || !arena) abort();
  REQUIRE(lr_resp_encode(out, n, argc, argv, argl) == n);
  lr_resp e;
  lr_resp_init(&e, elems, c.max_elems, arena, ARENA, c.max_bulk);
  REQUIRE(lr_resp_feed(&e, out, n, &u) == LR_RESP_DONE && u == n);
  fuzz_buf a = {NULL, 0, 0}, b = {NULL, 0, 0};
  put_reply(d, &a);
  put_reply(&e, &b);
  REQUIRE(fuzz_buf_equal(&a, &b));
  free(a.p);
  free(b.p);
  free(out);
  free(elems);
  free(arena);
  free(argv);
  free(argl);
}

/* Feeds s[0..n) in pieces: [0, cut) and [cut, n), or byte by byte. */
NO_COVERAGE static void run(const char *s, size_t n, size_t cut, int bytewise, caps c, fuzz_buf *t) {
  lr_resp_elem *elems = malloc(c.max_elems * sizeof *elems);
  char *arena = malloc(ARENA);
  lr_resp d;
  size_t at = 0;
  int over = 0;
  if (!elems || !arena) abort();
  lr_resp_init(&d, elems, c.max_elems, arena, ARENA, c.max_bulk);
  while (!over && at < n) {
    size_t piece = bytewise ? 1 : at < cut ? cut - at : n - at, off = 0;
    char *block = malloc(piece);
    if (!block) abort();
    memcpy(block, s + at, piece);
    for (;;) {
      size_t u;
      lr_resp_event ev = lr_resp_feed(&d, block + off, piece - off, &u);
      REQUIRE(u <= piece - off);
      off += u;
      if (ev == LR_RESP_MORE) {
        REQUIRE(off == piece);
        break;
      }
      if (ev == LR_RESP_ERROR) {
        REQUIRE(d.message[0] != '\0' && d.bytes_in >= 1);
        fuzz_put(t, d.message, strlen(d.message));
        over = 1;
        break;
      }
      REQUIRE(d.n_elems >= 1 && d.n_elems <= c.max_elems && d.arena_len <= ARENA);
      put_reply(&d, t);
      fuzz_put(t, &d.bytes_in, sizeof d.bytes_in);
      reencode(&d, c);
      lr_resp_next(&d);
      if (off == piece) break;
    }
    free(block);
    at += piece;
  }
  fuzz_put(t, &over, sizeof over);
  free(elems);
  free(arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t bulks[4] = {8, 64, 300, 0};
  if (size < 2) return 0;
  const char *s = (const char *)data + 2;
  size_t n = size - 2, cut = (size_t)data[0] * (n + 1) / 256;
  caps c = {data[1] & 16 ? LR_RESP_DEFAULT_MAX_ELEMS : 1 + (size_t)(data[1] & 15), bulks[(data[1] >> 5) & 3]};
  fuzz_buf whole = {NULL, 0, 0}, pieces = {NULL, 0, 0};
  run(s, n, n, 0, c, &whole);
  run(s, n, cut, data[1] >> 7, c, &pieces);
  REQUIRE(fuzz_buf_equal(&whole, &pieces));
  free(whole.p);
  free(pieces.p);
  return 0;
}
