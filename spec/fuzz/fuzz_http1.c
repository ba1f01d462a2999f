/* Fuzz target: the HTTP/1.1 response decoder, fed the input whole and again
 * in the pieces the first byte chooses; both runs must tell the same story
 * (head, body, end, error, bytes taken), within every cap. The first two
 * bytes are settings, the rest is what the upstream sent:
 *   byte 0: bits 0-1 how to cut (byte by byte, pieces of 1 + p * p bytes,
 *           random pieces, whole); bits 2-5 p, also the seed; bit 6 whether
 *           the connection closes after the input
 *   byte 1: max_body 0..127, or 1 MiB when bit 7 is set
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -Icsrc ...
 * elsewhere: add -DLR_FUZZ_STANDALONE for a plain main (fuzz.h). */
#include "fuzz.h"
#include "http1.h"
#include "rng.h"

NO_COVERAGE static void check_head(const lr_http1 *h, fuzz_buf *t) {
  long long fields[5] = {h->status, h->keep_alive, h->chunked, (long long)h->content_length, (long long)h->head_len};
  REQUIRE(h->status >= 200 && h->status <= 599);
  REQUIRE(h->head_len <= LR_H1_MAX_HEAD && h->interim <= LR_H1_MAX_INTERIM);
  REQUIRE(h->ctype_off + h->ctype_len <= h->head_len);
  REQUIRE(h->head_len >= 9 && memcmp(h->head, "HTTP/1.", 7) == 0);
  fuzz_put(t, fields, sizeof fields);
  fuzz_put(t, h->head, h->head_len);
}

/* Feeds s[0..n) cut by mode; each piece at the end of a block of its size. */
NO_COVERAGE static void run(const char *s, size_t n, uint64_t max, int eof, int mode, int param, fuzz_buf *t) {
  lr_http1 h;
  lr_rng rng;
  size_t at = 0;
  int over = 0;
  lr_h1_event ev = LR_H1_MORE;
  lr_rng_seed(&rng, (uint64_t)param * 7919 + n);
  lr_http1_init(&h, max);
  while (!over && at < n) {
    size_t piece, off = 0;
    switch (mode) {
    case 0: piece = 1; break;
    case 1: piece = 1 + (size_t)(param * param); break;
    case 2: piece = lr_rng_next(&rng) % 8 ? lr_rng_next(&rng) % 65 : lr_rng_next(&rng) % (n - at + 1); break;
    default: piece = n; break;
    }
    if (piece > n - at) piece = n - at;
    char *block = malloc(piece ? piece : 1);
    if (!block) abort();
    memcpy(block, s + at, piece);
    for (;;) {
      const char *b;
      size_t bl, u;
      ev = lr_http1_feed(&h, block + off, piece - off, &u, &b, &bl);
      REQUIRE(u <= piece - off);
      off += u;
      if (ev == LR_H1_HEAD) {
        check_head(&h, t);
        continue;
      }
      if (ev == LR_H1_BODY) {
        REQUIRE(bl > 0 && b >= block && b + bl <= block + piece);
        fuzz_put(t, b, bl);
        continue;
      }
      if (ev == LR_H1_MORE) REQUIRE(off == piece);
      else over = 1;
      break;
    }
    free(block);
    at += piece;
  }
  if (!over && eof) ev = lr_http1_eof(&h);
  REQUIRE(h.body_bytes <= max && h.bytes_in <= n);
  if (ev == LR_H1_ERROR) {
    REQUIRE(h.kind == LR_E_HTTP || h.kind == LR_E_CONNECT);
    REQUIRE(h.message[0] != '\0');
    fuzz_put(t, h.message, strlen(h.message));
  }
  uint64_t end[3] = {(uint64_t)ev, (uint64_t)h.kind, h.bytes_in};
  fuzz_put(t, end, sizeof end);
  if (ev == LR_H1_DONE || ev == LR_H1_ERROR) { /* both stick */
    const char *b;
    size_t bl, u;
    REQUIRE(lr_http1_feed(&h, "HTTP/1.1 200 OK\r\n", 17, &u, &b, &bl) == ev && u == 0);
  }
  lr_http1_free(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  const char *s = (const char *)data + 2;
  size_t n = size - 2;
  int mode = data[0] & 3, param = (data[0] >> 2) & 15, eof = (data[0] >> 6) & 1;
  uint64_t max = data[1] & 0x80 ? (uint64_t)1 << 20 : (uint64_t)(data[1] & 0x7f);
  fuzz_buf whole = {NULL, 0, 0}, cut = {NULL, 0, 0};
  run(s, n, max, eof, 3, param, &whole);
  run(s, n, max, eof, mode, param, &cut);
  REQUIRE(fuzz_buf_equal(&whole, &cut));
  free(whole.p);
  free(cut.p);
  return 0;
}
