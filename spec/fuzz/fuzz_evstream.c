/* Fuzz target: a streamed answer's event reader (csrc/evbuf.c), chat's
 * chunks and Responses' named events. Invariants: any chunking of the bytes
 * gives the same events, fault and completeness as one feed; every queued
 * event is a JSON object; a fault sticks and nothing is queued after it; a
 * complete stream has no fault; a fault's outcome has a kind and a message.
 * Byte 0 picks the api (bit 0: Responses) and the chunk size (bits 1-7). */
#include "fuzz.h"
#include "answer.h"
#include "evbuf.h"
#include "jsoncheck.h"

typedef struct {
  int fault, complete, done;
  double usage;
  long n;
} summary;

static summary run(const char *s, size_t n, int api, size_t chunk, fuzz_buf *events) {
  lr_evstream es;
  lr_evq q = {0};
  lr_evstream_init(&es, 1 << 16);
  es.api = api;
  int stuck = LR_SF_NONE;
  for (size_t at = 0; at < n;) {
    size_t k = n - at < chunk ? n - at : chunk;
    long before = q.n;
    int f = lr_evstream_feed(&es, &q, s + at, k);
    if (stuck != LR_SF_NONE) REQUIRE(f == stuck && q.n == before); /* sticky, nothing more queued */
    stuck = f;
    at += k;
  }
  lr_sse_finish(&es.sse);
  summary r = {es.fault, lr_evstream_complete(&es), es.saw_done, es.usage, q.n};
  if (r.complete) REQUIRE(r.fault == LR_SF_NONE);
  if (r.fault != LR_SF_NONE) {
    char msg[96];
    REQUIRE(lr_answer_fault((lr_stream_fault)r.fault, 1 << 16, msg, sizeof msg) != LR_E_NONE && msg[0]);
  }
  size_t off = 0, len;
  const char *e;
  while ((e = lr_evq_next(q.buf, q.len, &off, &len))) {
    REQUIRE(lr_json_check_object(e, len, LR_MAX_JSON_DEPTH) == 0);
    fuzz_put(events, &len, sizeof len);
    fuzz_put(events, e, len);
  }
  lr_evstream_free(&es);
  lr_evq_free(&q);
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > (1 << 18)) return 0;
  int api = data[0] & 1 ? LR_API_RESPONSES : LR_API_CHAT;
  size_t chunk = (size_t)(data[0] >> 1) + 1;
  const char *s = (const char *)data + 1;
  size_t n = size - 1;
  fuzz_buf whole = {0}, split = {0};
  summary a = run(s, n, api, n ? n : 1, &whole);
  summary b = run(s, n, api, chunk, &split);
  REQUIRE(a.fault == b.fault && a.complete == b.complete && a.done == b.done && a.n == b.n);
  REQUIRE(a.usage == b.usage);
  REQUIRE(fuzz_buf_equal(&whole, &split));
  free(whole.p);
  free(split.p);
  return 0;
}
