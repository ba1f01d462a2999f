/* bench/ref_curl.c - raw libcurl-multi reference client for llmrelay's
 * benchmarks (bench/percall.lua, bench/batch.lua).
 *
 *   build/bench-ref-curl URL N          sequential mode (bench/percall.lua)
 *   build/bench-ref-curl URL N C        concurrent mode (bench/batch.lua)
 *
 * URL is the full chat-completions URL, e.g.
 * http://127.0.0.1:PORT/v1/chat/completions; in concurrent mode it may be a
 * comma-separated list, used round-robin (request i goes to URL i mod k).
 *
 * Sequential mode sends N POSTs of one small chat JSON body one after the
 * other with a single reused easy handle driven through a CURLM
 * (curl_multi_perform / curl_multi_poll).
 *
 * Concurrent mode sends N POSTs with at most C in flight on one CURLM: C easy
 * handles, each re-added as soon as its transfer ends, so connections are
 * reused from the multi handle's pool (keep-alive).
 *
 * Both modes: keep-alive, the headers a real client sends (Content-Type,
 * Authorization, an empty "Expect:"), no retries, no JSON parsing: a call is
 * ok when the transfer succeeded, the status is 200 and the body is
 * non-empty.  Prints one JSON line:
 *   {"n":N,"c":C,"ok":K,"failed":F,"wall_s":..,"cpu_user_s":..,"cpu_sys_s":..}
 * (c is 1 in sequential mode) where the times cover the request loop only
 * (getrusage(RUSAGE_SELF) and CLOCK_MONOTONIC).  Exit status: 0 when every
 * call was ok, 1 otherwise, 2 on usage or setup errors.
 *
 * Build: cc -std=gnu99 -O2 -Wall -Wextra bench/ref_curl.c \
 *          -o build/bench-ref-curl -lcurl
 */
#include <curl/curl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static const char BODY[] =
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

typedef struct {
  size_t len;
} sink;

/* The body is only counted: a reference client that copied it would only
 * add noise, and llmrelay's own copy is part of what is being measured. */
static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  (void)p;
  ((sink *)ud)->len += sz * n;
  return sz * n;
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv_s(struct timeval tv) {
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* One request through the multi handle; returns the CURLcode of the
 * transfer (or CURLE_FAILED_INIT when the multi interface itself failed). */
static CURLcode run_one(CURLM *m, CURL *e) {
  if (curl_multi_add_handle(m, e) != CURLM_OK) return CURLE_FAILED_INIT;
  CURLcode res = CURLE_FAILED_INIT;
  int running = 1;
  while (running) {
    if (curl_multi_perform(m, &running) != CURLM_OK) break;
    if (running && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK) break;
  }
  int left;
  CURLMsg *msg;
  while ((msg = curl_multi_info_read(m, &left)) != NULL) {
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) res = msg->data.result;
  }
  curl_multi_remove_handle(m, e);
  return res;
}

static struct curl_slist *hdr;

/* The options every easy handle of both modes gets. */
static void setup_easy(CURL *e, const char *url, sink *s) {
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, BODY);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(sizeof BODY - 1));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(e, CURLOPT_PRIVATE, s);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "bench-ref-curl");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
}

static long failed_reported;

static void report_failure(long call, CURLcode rc, long status, size_t len) {
  if (failed_reported++ < 5) /* the first few failures only */
    fprintf(stderr, "bench-ref-curl: call %ld: %s, status %ld, %zu body bytes\n", call,
            curl_easy_strerror(rc), status, len);
}

static long run_sequential(CURLM *m, const char *url, long n) {
  CURL *e = curl_easy_init();
  if (!e) return -1;
  sink s = {0};
  setup_easy(e, url, &s);
  long ok = 0;
  for (long i = 0; i < n; i++) {
    s.len = 0;
    CURLcode rc = run_one(m, e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status == 200 && s.len > 0) {
      ok++;
    } else {
      report_failure(i + 1, rc, status, s.len);
    }
  }
  curl_easy_cleanup(e);
  return ok;
}

/* Concurrent mode: C easy handles kept busy until N transfers are done. */
static long run_concurrent(CURLM *m, char **urls, int nurls, long n, long c) {
  CURL **es = calloc((size_t)c, sizeof *es);
  sink *ss = calloc((size_t)c, sizeof *ss);
  long *call_of = calloc((size_t)c, sizeof *call_of); /* request number, for failure reports */
  if (!es || !ss || !call_of) return -1;
  long next = 0, done = 0, ok = 0, in_flight = 0;
  for (long j = 0; j < c; j++) {
    if (!(es[j] = curl_easy_init())) return -1;
    setup_easy(es[j], urls[0], &ss[j]);
  }

  for (long j = 0; j < c && next < n; j++, next++) {
    curl_easy_setopt(es[j], CURLOPT_URL, urls[next % nurls]);
    call_of[j] = next + 1;
    if (curl_multi_add_handle(m, es[j]) != CURLM_OK) return -1;
    in_flight++;
  }
  while (in_flight > 0) {
    int running = 0;
    if (curl_multi_perform(m, &running) != CURLM_OK) return -1;
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL *e = msg->easy_handle;
      CURLcode rc = msg->data.result;
      sink *s = NULL;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&s);
      long j = s - ss, status = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      if (rc == CURLE_OK && status == 200 && s->len > 0) {
        ok++;
      } else {
        report_failure(call_of[j], rc, status, s->len);
      }
      done++;
      in_flight--;
      curl_multi_remove_handle(m, e);
      if (next < n) {
        s->len = 0;
        curl_easy_setopt(e, CURLOPT_URL, urls[next % nurls]);
        call_of[j] = ++next;
        if (curl_multi_add_handle(m, e) != CURLM_OK) return -1;
        in_flight++;
      }
    }
    /* a re-added handle is due at once: curl_multi_poll then returns at once */
    if (in_flight > 0 && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK) return -1;
  }
  for (long j = 0; j < c; j++) curl_easy_cleanup(es[j]);
  free(es);
  free(ss);
  free(call_of);
  return done == n ? ok : -1;
}

static long parse_count(const char *prog, const char *what, const char *arg, long min) {
  char *end;
  long v = strtol(arg, &end, 10);
  if (!*arg || *end || v < min) {
    fprintf(stderr, "%s: %s must be an integer >= %ld\n", prog, what, min);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: %s URL N          (sequential)\n"
                    "       %s URL[,URL...] N C   (at most C in flight)\n", argv[0], argv[0]);
    return 2;
  }
  long n = parse_count(argv[0], "N", argv[2], 0);
  long c = argc == 4 ? parse_count(argv[0], "C", argv[3], 1) : 0;

  /* URL list (concurrent mode only; sequential takes URL as it is) */
  char *list = strdup(argv[1]);
  int nurls = 0;
  char **urls = calloc(strlen(argv[1]) / 2 + 2, sizeof *urls);
  if (!list || !urls) return 2;
  if (c > 0) {
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) urls[nurls++] = tok;
  } else {
    urls[nurls++] = argv[1];
  }
  if (nurls == 0) {
    fprintf(stderr, "%s: no URL\n", argv[0]);
    return 2;
  }
  if (c > n && n > 0) c = n;

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 2;
  CURLM *m = curl_multi_init();
  if (!m) return 2;

  hdr = curl_slist_append(hdr, "Content-Type: application/json");
  hdr = curl_slist_append(hdr, "Authorization: Bearer bench-key");
  hdr = curl_slist_append(hdr, "Expect:");
  if (!hdr) return 2;

  struct rusage r0, r1;
  double t0 = mono_s();
  getrusage(RUSAGE_SELF, &r0);
  long ok = c > 0 ? run_concurrent(m, urls, nurls, n, c) : run_sequential(m, urls[0], n);
  getrusage(RUSAGE_SELF, &r1);
  double t1 = mono_s();
  if (ok < 0) {
    fprintf(stderr, "%s: libcurl setup or multi error\n", argv[0]);
    return 2;
  }

  printf("{\"n\":%ld,\"c\":%ld,\"ok\":%ld,\"failed\":%ld,\"wall_s\":%.6f,\"cpu_user_s\":%.6f,"
         "\"cpu_sys_s\":%.6f}\n",
         n, c > 0 ? c : 1, ok, n - ok, t1 - t0, tv_s(r1.ru_utime) - tv_s(r0.ru_utime),
         tv_s(r1.ru_stime) - tv_s(r0.ru_stime));

  curl_multi_cleanup(m);
  curl_slist_free_all(hdr);
  curl_global_cleanup();
  free(urls);
  free(list);
  return ok == n ? 0 : 1;
}
