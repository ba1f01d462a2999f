/* mock_chat.c - chat-request scanning and chat.completion / SSE rendering for
 * the llmrelay mock server (see mock_llm.c).
 *
 * The request body is not parsed into a tree: one linear pass walks the JSON
 * text, skipping string contents correctly (so text inside a message never
 * looks like a key), tracks the nesting depth and notes:
 *   - the LAST "content" key whose value is a string (any depth),
 *   - "model" (string) and "stream" (true) at depth 1,
 *   - "include_usage" (true) at any depth (it lives in stream_options),
 *   - the LAST "text" string (any depth: Responses input items), "input"
 *     and "prompt" strings, "dimensions" (a number) and "encoding_format":
 *     "base64" at depth 1, and where
 *     the depth-1 "input" value starts (embeddings count its elements).
 * String values are kept as raw JSON text (escapes untouched), so echoing them
 * inside our own JSON strings keeps the output valid.
 */
#include "mock.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static size_t skip_ws(const char *b, size_t i, size_t n)
{
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' ||
                     b[i] == '\r'))
        i++;
    return i;
}

/* i: first byte after an opening quote; returns index of closing quote or n */
static size_t str_end(const char *b, size_t i, size_t n)
{
    while (i < n) {
        if (b[i] == '\\')
            i += 2;
        else if (b[i] == '"')
            return i;
        else
            i++;
    }
    return n;
}

static int key_is(const char *k, size_t kl, const char *want)
{
    return strlen(want) == kl && memcmp(k, want, kl) == 0;
}

static int is_true(const char *b, size_t v, size_t n)
{
    if (n - v < 4 || memcmp(b + v, "true", 4) != 0)
        return 0;
    if (v + 4 == n)
        return 1;
    char c = b[v + 4];
    return !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '_');
}

void chat_scan(const char *b, size_t n, struct chatinfo *ci)
{
    memset(ci, 0, sizeof *ci);
    long depth = 0;
    size_t i = 0;
    while (i < n) {
        char c = b[i];
        if (c == '{' || c == '[') {
            depth++;
            i++;
            continue;
        }
        if (c == '}' || c == ']') {
            depth--;
            i++;
            continue;
        }
        if (c != '"') {
            i++;
            continue;
        }
        size_t s = i + 1, e = str_end(b, s, n);
        if (e >= n)
            break;
        i = e + 1;
        size_t j = skip_ws(b, i, n);
        if (j >= n || b[j] != ':')
            continue; /* a string value, not a key */
        size_t v = skip_ws(b, j + 1, n);
        if (v >= n)
            break;
        const char *k = b + s;
        size_t kl = e - s;
        int isc = key_is(k, kl, "content");
        int ist = key_is(k, kl, "text");
        int ism = depth == 1 && key_is(k, kl, "model");
        int isi = depth == 1 && key_is(k, kl, "input");
        int isp = depth == 1 && key_is(k, kl, "prompt");
        if (isi) {
            ci->input_any = 1;
            ci->input_off = v;
        }
        if ((isc || ist || ism || isi || isp) && b[v] == '"') {
            size_t ve = str_end(b, v + 1, n);
            if (ve < n) {
                const char *sv = b + v + 1;
                size_t sl = ve - v - 1;
                if (isc) {
                    ci->content = sv;
                    ci->content_len = sl;
                    ci->has_content = 1;
                    ci->text_last = 0;
                } else if (ist) {
                    ci->text = sv;
                    ci->text_len = sl;
                    ci->has_text = 1;
                    ci->text_last = 1;
                } else if (ism) {
                    ci->model = sv;
                    ci->model_len = sl;
                    ci->has_model = 1;
                } else if (isi) {
                    ci->input = sv;
                    ci->input_len = sl;
                    ci->has_input = 1;
                } else {
                    ci->prompt = sv;
                    ci->prompt_len = sl;
                    ci->has_prompt = 1;
                }
            }
        } else if (depth == 1 && key_is(k, kl, "stream")) {
            ci->stream = is_true(b, v, n);
        } else if (key_is(k, kl, "include_usage")) {
            ci->include_usage = is_true(b, v, n);
        } else if (depth == 1 && key_is(k, kl, "encoding_format")) {
            ci->base64 = n - v >= 8 && memcmp(b + v, "\"base64\"", 8) == 0;
        } else if (depth == 1 && key_is(k, kl, "dimensions")) {
            long d = 0;
            for (size_t x = v; x < n && b[x] >= '0' && b[x] <= '9' && d < 100000; x++)
                d = d * 10 + (b[x] - '0');
            ci->dimensions = d;
        }
        i = j + 1;
    }
}

static int hex4(const char *s, size_t n, size_t i, unsigned *out)
{
    unsigned u = 0;
    if (n < 4 || i > n - 4)
        return 0;
    for (size_t k = i; k < i + 4; k++) {
        int c = s[k], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return 0;
        u = u * 16 + (unsigned)d;
    }
    *out = u;
    return 1;
}

/* Longest prefix of raw JSON string text s that is <= max bytes and cuts no
 * escape sequence, no surrogate pair and no UTF-8 sequence. */
size_t json_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t step = 1;
        unsigned u;
        if (c == '\\') {
            step = 2;
            if (i + 1 < n && s[i + 1] == 'u') {
                step = 6;
                if (hex4(s, n, i + 2, &u) && u >= 0xD800 && u <= 0xDBFF &&
                    i + 7 < n && s[i + 6] == '\\' && s[i + 7] == 'u')
                    step = 12;
            }
        } else if (c >= 0xC0) {
            step = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        }
        if (step > n - i)
            step = n - i;
        if (i + step > max)
            break;
        i += step;
    }
    return i;
}

/* copy, turning raw control bytes (invalid inside JSON strings) into spaces */
size_t copy_clean(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = c < 0x20 ? ' ' : (char)c;
    }
    return n;
}

/* Go time.Duration style: 0s, 120ms, 1.5s, 1m2s, 1h0m0s (ms resolution,
 * rounded up so a client waiting that long is never early). */
void go_duration(char *out, size_t sz, double seconds)
{
    long long ms = (long long)ceil(seconds * 1000.0 - 1e-6);
    if (ms <= 0) {
        snprintf(out, sz, "0s");
        return;
    }
    if (ms < 1000) {
        snprintf(out, sz, "%lldms", ms);
        return;
    }
    long long h = ms / 3600000, m = ms / 60000 % 60, sms = ms % 60000;
    char sec[32];
    int k = snprintf(sec, sizeof sec, "%lld.%03lld", sms / 1000, sms % 1000);
    while (k > 0 && sec[k - 1] == '0')
        sec[--k] = 0;
    if (k > 0 && sec[k - 1] == '.')
        sec[--k] = 0;
    if (h)
        snprintf(out, sz, "%lldh%lldm%ss", h, m, sec);
    else if (m)
        snprintf(out, sz, "%lldm%ss", m, sec);
    else
        snprintf(out, sz, "%ss", sec);
}

/* milliseconds rounded up to 0.1: "12", "12.5" */
void fmt_ms(char *out, size_t sz, double ms)
{
    double t = ceil(ms * 10.0 - 1e-6);
    if (t < 0)
        t = 0;
    long long x = (long long)t;
    if (x % 10)
        snprintf(out, sz, "%lld.%lld", x / 10, x % 10);
    else
        snprintf(out, sz, "%lld", x / 10);
}

/* msg must already be JSON-string-safe text; code NULL -> null */
void error_json(struct buf *b, const char *msg, size_t msg_len,
                const char *type, const char *code, const char *param)
{
    buf_puts(b, "{\"error\":{\"message\":\"");
    buf_put(b, msg, msg_len);
    buf_printf(b, "\",\"type\":\"%s\",\"param\":", type);
    if (param)
        buf_printf(b, "\"%s\",\"code\":", param);
    else
        buf_puts(b, "null,\"code\":");
    if (code)
        buf_printf(b, "\"%s\"}}", code);
    else
        buf_puts(b, "null}}");
}

void chat_render(struct buf *b, const char *id, long created,
                 const char *model, const char *content, size_t content_len,
                 size_t ptok, size_t ctok, size_t pad)
{
    buf_printf(b,
               "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%ld,"
               "\"model\":\"%s\",\"choices\":[{\"index\":0,\"message\":{"
               "\"role\":\"assistant\",\"content\":\"",
               id, created, model);
    buf_put(b, content, content_len);
    buf_printf(b,
               "\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":"
               "%zu,\"completion_tokens\":%zu,\"total_tokens\":%zu}",
               ptok, ctok, ptok + ctok);
    if (pad) {
        buf_puts(b, ",\"padding\":\"");
        buf_reserve(b, pad);
        memset(b->p + b->len, 'x', pad);
        b->len += pad;
        buf_puts(b, "\"");
    }
    buf_puts(b, "}");
}

/* --stream-multiline-data 1: the same JSON over four data: lines, split
 * where a newline is JSON whitespace (SSE joins the lines with "\n"); chat
 * streams only. A legacy completions stream's chunks are text_completion
 * objects with the same phases (no role chunk). */
static void chunk_head(struct buf *t, const struct stream *s)
{
    if (s->api == API_COMPLETIONS) {
        buf_printf(t, "data: {\"id\":\"%s\",\"object\":\"text_completion\","
                      "\"created\":%ld,\"model\":\"%s\",\"choices\":",
                   s->id, s->created, s->model);
        return;
    }
    const char *nl = cfg.multiline_data ? "\ndata: " : "";
    buf_printf(t,
               "data: {\"id\":\"%s\",%s\"object\":\"chat.completion.chunk\","
               "%s\"created\":%ld,\"model\":\"%s\",\"choices\":%s",
               s->id, nl, nl, s->created, s->model, nl);
}

/* Phases: 0 role chunk (chat only), 1 one chunk per word, 2 finish chunk,
 * 3 usage chunk (only with include_usage), 4 [DONE], 5 chunked terminator,
 * 6 finished. Chat and legacy completions differ only in their chunks'
 * choices. */
int stream_next(struct stream *s, struct buf *out, struct buf *t)
{
    if (s->api == API_RESPONSES)
        return responses_next(s, out, t);
    int cmpl = s->api == API_COMPLETIONS;
    t->len = 0;
    for (;;) {
        switch (s->phase) {
        case 0:
            if (cmpl) {
                s->phase = 1;
                continue;
            }
            chunk_head(t, s);
            buf_puts(t, "[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                        "\"content\":\"\"},\"finish_reason\":null}]}\n\n");
            s->phase = 1;
            break;
        case 1: {
            if (s->pos >= s->content_len) {
                s->phase = 2;
                continue;
            }
            size_t j = s->pos;
            while (j < s->content_len && s->content[j] != ' ')
                j++;
            while (j < s->content_len && s->content[j] == ' ')
                j++;
            chunk_head(t, s);
            buf_puts(t, cmpl ? "[{\"text\":\"" : "[{\"index\":0,\"delta\":{\"content\":\"");
            buf_put(t, s->content + s->pos, j - s->pos);
            buf_puts(t, cmpl ? "\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n"
                             : "\"},\"finish_reason\":null}]}\n\n");
            s->pos = j;
            break;
        }
        case 2:
            chunk_head(t, s);
            buf_puts(t, cmpl ? "[{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n"
                             : "[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
            s->phase = s->include_usage ? 3 : 4;
            break;
        case 3:
            chunk_head(t, s);
            buf_printf(t,
                       "[],\"usage\":{\"prompt_tokens\":%zu,"
                       "\"completion_tokens\":%zu,\"total_tokens\":%zu}}\n\n",
                       s->prompt_tokens, s->completion_tokens,
                       s->prompt_tokens + s->completion_tokens);
            s->phase = 4;
            break;
        case 4:
            buf_puts(t, "data: [DONE]\n\n");
            s->phase = 5;
            break;
        case 5:
            if (s->chunked)
                buf_puts(out, "0\r\n\r\n");
            s->phase = 6;
            return 0;
        default:
            return 0;
        }
        break;
    }
    stream_emit(s, out, t);
    return 1;
}

void stream_emit(struct stream *s, struct buf *out, const struct buf *t)
{
    if (s->chunked)
        buf_printf(out, "%zx\r\n", t->len);
    buf_put(out, t->p, t->len);
    if (s->chunked)
        buf_puts(out, "\r\n");
    s->events++;
}
