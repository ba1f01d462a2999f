/* mock_apis.c - the model APIs of the llmrelay mock server beyond chat
 * (see mock_llm.c for the behaviour): embeddings, Responses (plain and
 * streamed as named SSE events) and legacy completions (plain and streamed
 * as text_completion chunks + [DONE]), and the per-path request counts of
 * /stats.
 *
 * Every text given here is raw JSON string text already safe to echo inside
 * our own JSON strings (see copy_clean / json_cut in mock_chat.c).
 */
#include "mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends(const char *p, size_t n, const char *w)
{
    size_t wl = strlen(w);
    return n >= wl && memcmp(p + n - wl, w, wl) == 0;
}

int api_of_path(const char *p, size_t n)
{
    if (ends(p, n, "/chat/completions"))
        return API_CHAT;
    if (ends(p, n, "/embeddings"))
        return API_EMBEDDINGS;
    if (ends(p, n, "/responses"))
        return API_RESPONSES;
    if (ends(p, n, "/completions"))
        return API_COMPLETIONS;
    return -1;
}

const char *api_object(int api)
{
    switch (api) {
    case API_EMBEDDINGS:
        return "list";
    case API_RESPONSES:
        return "response";
    case API_COMPLETIONS:
        return "text_completion";
    default:
        return "chat.completion";
    }
}

/* ------------------------------------------------------------ embeddings */

static size_t skip_string(const char *b, size_t i, size_t n) /* at '"' */
{
    for (i++; i < n; i++) {
        if (b[i] == '\\')
            i++;
        else if (b[i] == '"')
            return i + 1;
    }
    return n;
}

/* "input": "s" -> 1; ["a","b"] -> 2; [1,2,3] (one token list) -> 1;
 * [[1,2],[3]] -> 2; anything else or an empty array -> 1 */
size_t embed_count(const char *b, size_t n, const struct chatinfo *ci)
{
    if (!ci->input_any || ci->input_off >= n || b[ci->input_off] != '[')
        return 1;
    size_t i = ci->input_off + 1, count = 0;
    long depth = 0;
    int first = 1;
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
        i++;
    if (i < n && (b[i] == '-' || (b[i] >= '0' && b[i] <= '9')))
        return 1; /* a single list of token ids */
    while (i < n) {
        char c = b[i];
        if (c == '"') {
            if (depth == 0 && first) {
                count++;
                first = 0;
            }
            i = skip_string(b, i, n);
            continue;
        }
        if (c == '[' || c == '{') {
            if (depth == 0 && first) {
                count++;
                first = 0;
            }
            depth++;
        } else if (c == ']' || c == '}') {
            if (depth == 0)
                break;
            depth--;
        } else if (c == ',' && depth == 0) {
            first = 1;
        } else if (depth == 0 && first && c != ' ' && c != '\t' &&
                   c != '\n' && c != '\r') {
            count++;
            first = 0;
        }
        i++;
    }
    return count ? count : 1;
}

/* the length of the JSON value at b (n bytes): a string, or an array /
 * object up to its matching bracket, or a scalar up to , } ] */
size_t json_value_len(const char *b, size_t n)
{
    if (n && b[0] == '"')
        return skip_string(b, 0, n);
    long depth = 0;
    size_t i = 0;
    while (i < n) {
        char c = b[i];
        if (c == '"') {
            i = skip_string(b, i, n);
            continue;
        }
        if (c == '[' || c == '{')
            depth++;
        else if (c == ']' || c == '}') {
            if (depth == 0)
                return i;
            if (--depth == 0)
                return i + 1;
        } else if (c == ',' && depth == 0)
            return i;
        i++;
    }
    return n;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void b64_put(struct buf *b, const unsigned char *p, size_t n)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {a[v >> 18 & 63], a[v >> 12 & 63],
                     i + 1 < n ? a[v >> 6 & 63] : '=', i + 2 < n ? a[v & 63] : '='};
        buf_put(b, q, 4);
    }
}

void embeddings_render(struct buf *b, const char *model, size_t count,
                       long dims, int base64, const char *seed,
                       size_t seed_len, size_t ptok)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the seed text */
    for (size_t i = 0; i < seed_len; i++)
        h = (h ^ (unsigned char)seed[i]) * 1099511628211ull;
    unsigned char f32[4 * 4096];
    buf_puts(b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < count; i++) {
        buf_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,"
                      "\"embedding\":%s", i ? "," : "", i, base64 ? "\"" : "[");
        for (long d = 0; d < dims; d++) {
            uint64_t x = mix(h ^ mix(i * 4096u + (uint64_t)d));
            double v = (double)(x >> 11) * (2.0 / 9007199254740992.0) - 1.0;
            char txt[32];
            snprintf(txt, sizeof txt, "%.6f", v);
            if (!base64) {
                buf_printf(b, "%s%s", d ? "," : "", txt);
                continue;
            }
            float fv = strtof(txt, NULL); /* the value the JSON form gives */
            uint32_t u;
            memcpy(&u, &fv, 4);
            for (int k = 0; k < 4; k++)
                f32[4 * d + k] = (unsigned char)(u >> (8 * k));
        }
        if (base64)
            b64_put(b, f32, 4 * (size_t)dims);
        buf_puts(b, base64 ? "\"}" : "]}");
    }
    buf_printf(b, "],\"model\":\"%s\",\"usage\":{\"prompt_tokens\":%zu,"
                  "\"total_tokens\":%zu}}", model, ptok, ptok);
}

/* ------------------------------------------------------------- Responses */

/* the response object; status "in_progress" renders no output and no usage */
void responses_render(struct buf *b, const struct stream *s, const char *status)
{
    int done = strcmp(status, "in_progress") != 0;
    int failed = strcmp(status, "failed") == 0;
    buf_printf(b, "{\"id\":\"%s\",\"object\":\"response\",\"created_at\":%ld,"
                  "\"status\":\"%s\",\"model\":\"%s\",\"output\":[",
               s->id, s->created, status, s->model);
    if (done && !failed) {
        buf_printf(b, "{\"type\":\"message\",\"id\":\"msg_%s\",\"status\":"
                      "\"%s\",\"role\":\"assistant\",\"content\":[{\"type\":"
                      "\"output_text\",\"text\":\"",
                   s->id + 5, status);
        buf_put(b, s->content, s->content_len);
        buf_puts(b, "\",\"annotations\":[]}]}");
    }
    buf_puts(b, "],\"error\":");
    if (failed)
        buf_puts(b, "{\"code\":\"server_error\",\"message\":"
                    "\"mock response failed\"}");
    else
        buf_puts(b, "null");
    buf_puts(b, ",\"incomplete_details\":");
    if (strcmp(status, "incomplete") == 0)
        buf_puts(b, "{\"reason\":\"max_output_tokens\"}");
    else
        buf_puts(b, "null");
    if (done)
        buf_printf(b, ",\"usage\":{\"input_tokens\":%zu,\"output_tokens\":%zu,"
                      "\"total_tokens\":%zu}}",
                   s->prompt_tokens, s->completion_tokens,
                   s->prompt_tokens + s->completion_tokens);
    else
        buf_puts(b, ",\"usage\":null}");
}

static void event_head(struct buf *t, struct stream *s, const char *type)
{
    buf_printf(t, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%ld",
               type, type, s->seq++);
}

static void text_head(struct buf *t, struct stream *s, const char *type)
{
    event_head(t, s, type);
    buf_printf(t, ",\"item_id\":\"msg_%s\",\"output_index\":0,"
                  "\"content_index\":0", s->id + 5);
}

/* Phases: 0 response.created, 1 one response.output_text.delta per word,
 * 2 response.output_text.done, 3 the terminal event (response.completed,
 * or response.failed / response.incomplete with --responses-status),
 * 4 chunked terminator, 5 finished.  No [DONE]. */
int responses_next(struct stream *s, struct buf *out, struct buf *t)
{
    const char *status = cfg.responses_status ? cfg.responses_status
                                              : "completed";
    char term[64];
    t->len = 0;
    switch (s->phase) {
    case 0:
        event_head(t, s, "response.created");
        buf_puts(t, ",\"response\":");
        responses_render(t, s, "in_progress");
        buf_puts(t, "}\n\n");
        s->phase = s->content_len ? 1 : 2;
        break;
    case 1: {
        size_t j = s->pos;
        while (j < s->content_len && s->content[j] != ' ')
            j++;
        while (j < s->content_len && s->content[j] == ' ')
            j++;
        text_head(t, s, "response.output_text.delta");
        buf_puts(t, ",\"delta\":\"");
        buf_put(t, s->content + s->pos, j - s->pos);
        buf_puts(t, "\"}\n\n");
        s->pos = j;
        if (s->pos >= s->content_len)
            s->phase = 2;
        break;
    }
    case 2:
        text_head(t, s, "response.output_text.done");
        buf_puts(t, ",\"text\":\"");
        buf_put(t, s->content, s->content_len);
        buf_puts(t, "\"}\n\n");
        s->phase = 3;
        break;
    case 3:
        snprintf(term, sizeof term, "response.%s", status);
        event_head(t, s, term);
        buf_puts(t, ",\"response\":");
        responses_render(t, s, status);
        buf_puts(t, "}\n\n");
        s->phase = 4;
        break;
    case 4:
        if (s->chunked)
            buf_puts(out, "0\r\n\r\n");
        s->phase = 5;
        return 0;
    default:
        return 0;
    }
    stream_emit(s, out, t);
    return 1;
}

/* ----------------------------------------------------------- completions */

void completions_render(struct buf *b, const char *id, long created,
                        const char *model, const char *text, size_t text_len,
                        size_t ptok, size_t ctok)
{
    buf_printf(b, "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":"
                  "%ld,\"model\":\"%s\",\"choices\":[{\"text\":\"",
               id, created, model);
    buf_put(b, text, text_len);
    buf_printf(b, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":"
                  "\"stop\"}],\"usage\":{\"prompt_tokens\":%zu,"
                  "\"completion_tokens\":%zu,\"total_tokens\":%zu}}",
               ptok, ctok, ptok + ctok);
}

/* ------------------------------------------------------------------ paths */

/* requests per path of the model APIs, in order of first arrival; paths
 * beyond PATHS_MAX distinct ones are counted under "(other)" */
static struct {
    char p[PATH_KEY_MAX];
    size_t len;
    uint64_t n;
} paths[PATHS_MAX];
static int npaths;
static uint64_t paths_other;

void paths_count(const char *p, size_t n)
{
    if (n > PATH_KEY_MAX)
        n = PATH_KEY_MAX;
    for (int i = 0; i < npaths; i++)
        if (paths[i].len == n && !memcmp(paths[i].p, p, n)) {
            paths[i].n++;
            return;
        }
    if (npaths == PATHS_MAX) {
        paths_other++;
        return;
    }
    memcpy(paths[npaths].p, p, n);
    paths[npaths].len = n;
    paths[npaths++].n = 1;
}

void paths_json(struct buf *b)
{
    buf_puts(b, ",\"paths\":{");
    for (int i = 0; i < npaths; i++) {
        buf_puts(b, i ? ",\"" : "\"");
        buf_json(b, paths[i].p, paths[i].len);
        buf_printf(b, "\":%llu", (unsigned long long)paths[i].n);
    }
    if (paths_other)
        buf_printf(b, "%s\"(other)\":%llu", npaths ? "," : "",
                   (unsigned long long)paths_other);
    buf_puts(b, "}");
}

void paths_reset(void)
{
    npaths = 0;
    paths_other = 0;
}

/* ------------------------------------------------------------ stream error */

void stream_error_event(const struct stream *s, struct buf *t)
{
    if (s->api == API_RESPONSES)
        buf_printf(t, "event: error\ndata: {\"type\":\"error\","
                      "\"sequence_number\":%ld,\"code\":\"server_error\","
                      "\"message\":\"mock stream error\",\"param\":null}\n\n",
                   s->seq);
    else
        buf_puts(t, "data: {\"error\":{\"message\":\"mock stream error\","
                    "\"type\":\"server_error\"}}\n\n");
}
