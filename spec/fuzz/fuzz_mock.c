/* Fuzz target: the mock server's request-body scanning (tools/mock_chat.c
 * chat_scan, tools/mock_apis.c embed_count / json_value_len) and the
 * answers it renders from what it found: the chat, embeddings (JSON and
 * base64), Responses and completions bodies and every event of their
 * streams, as tools/mock_llm.c builds them. The input is a request body.
 * Invariants: what the scan found lies inside the body; the counts and
 * lengths stay in bounds; a rendered answer holds no raw control byte but
 * the SSE framing's newlines; every stream ends.
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -Icsrc ...
 * elsewhere: add -DLR_FUZZ_STANDALONE for a plain main (fuzz.h). */
#include "fuzz.h"

#include "../../tools/mock_http.c"
#include "../../tools/mock_chat.c"
#include "../../tools/mock_apis.c"

struct config cfg;
struct stats st;

NO_COVERAGE static int inside(const char *p, size_t n, const char *b, size_t bn) {
  return p >= b && p + n <= b + bn;
}

NO_COVERAGE static void no_controls(const struct buf *b, int sse) {
  for (size_t i = 0; i < b->len; i++) {
    unsigned char c = (unsigned char)b->p[i];
    REQUIRE(c >= 0x20 || (sse && (c == '\n' || c == '\r')));
  }
}

static void render(const char *b, size_t n, const struct chatinfo *ci, int api) {
  struct stream s;
  memset(&s, 0, sizeof s);
  const char *et = api == API_CHAT ? ci->content : api == API_COMPLETIONS ? ci->prompt : ci->input;
  size_t etl = api == API_CHAT ? ci->content_len : api == API_COMPLETIONS ? ci->prompt_len : ci->input_len;
  if (api == API_RESPONSES && !ci->has_input && (ci->has_content || ci->has_text)) {
    et = ci->text_last ? ci->text : ci->content;
    etl = ci->text_last ? ci->text_len : ci->content_len;
  }
  size_t cl = 6;
  memcpy(s.content, "echo: ", 6);
  if (et) cl += copy_clean(s.content + 6, et, json_cut(et, etl, ECHO_MAX));
  REQUIRE(cl <= sizeof s.content);
  s.content_len = cl;
  snprintf(s.id, sizeof s.id, "%sfz-1", api == API_RESPONSES ? "resp_" : "x-");
  size_t ml = ci->has_model ? json_cut(ci->model, ci->model_len, MODEL_MAX) : 0;
  copy_clean(s.model, ci->has_model ? ci->model : "", ml);
  s.model[ml] = 0;
  s.prompt_tokens = n / 4 + 1;
  s.completion_tokens = cl / 4 + 1;
  s.include_usage = ci->include_usage;
  s.api = api;
  s.chunked = ci->stream;
  struct buf out = {0}, t = {0};
  if (api == API_EMBEDDINGS) {
    long dims = ci->dimensions > 0 && ci->dimensions <= 64 ? ci->dimensions : 3;
    size_t count = embed_count(b, n, ci);
    REQUIRE(count >= 1 && count <= n + 1);
    size_t vl = ci->input_any ? json_value_len(b + ci->input_off, n - ci->input_off) : 0;
    REQUIRE(vl <= n - (ci->input_any ? ci->input_off : 0));
    if (count > 64) count = 64;
    embeddings_render(&out, s.model, count, dims, ci->base64, ci->input_any ? b + ci->input_off : s.model,
                      ci->input_any ? vl : ml, s.prompt_tokens);
    no_controls(&out, 0);
  } else if (api == API_RESPONSES) {
    responses_render(&out, &s, "completed");
    no_controls(&out, 0);
  } else if (api == API_COMPLETIONS) {
    completions_render(&out, s.id, 1, s.model, s.content, cl, 1, 1);
    no_controls(&out, 0);
  } else {
    chat_render(&out, s.id, 1, s.model, s.content, cl, 1, 1, 0);
    no_controls(&out, 0);
  }
  if (api != API_EMBEDDINGS) {
    out.len = 0;
    long k = 0;
    while (stream_next(&s, &out, &t)) REQUIRE(++k <= (long)cl + 8);
    no_controls(&out, 1);
    t.len = 0;
    stream_error_event(&s, &t);
    no_controls(&t, 1);
  }
  buf_free(&out);
  buf_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  cfg.responses_status = data[0] & 1 ? "failed" : data[0] & 2 ? "incomplete" : NULL;
  cfg.multiline_data = data[0] >> 2 & 1;
  const char *b = (const char *)data + 1;
  size_t n = size - 1;
  struct chatinfo ci;
  chat_scan(b, n, &ci);
  if (ci.has_content) REQUIRE(inside(ci.content, ci.content_len, b, n));
  if (ci.has_model) REQUIRE(inside(ci.model, ci.model_len, b, n));
  if (ci.has_input) REQUIRE(inside(ci.input, ci.input_len, b, n));
  if (ci.has_prompt) REQUIRE(inside(ci.prompt, ci.prompt_len, b, n));
  if (ci.has_text) REQUIRE(inside(ci.text, ci.text_len, b, n));
  if (ci.input_any) REQUIRE(ci.input_off < n);
  for (int api = API_CHAT; api <= API_COMPLETIONS; api++) render(b, n, &ci, api);
  return 0;
}
