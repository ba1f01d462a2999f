/* bench/ref_curl.c - raw libcurl-multi reference client for bench/percall.lua.
 *
 *   build/bench-ref-curl URL N
 *
 * Sends N sequential POSTs of one small chat JSON body to URL (the full
 * chat-completions URL, e.g. http://127.0.0.1:PORT/v1/chat/completions)
 * with a single reused easy handle driven through a CURLM
 * (curl_multi_perform / curl_multi_poll), keep-alive, and the headers a real
 * client sends (Content-Type, Authorization, an empty "Expect:").  No
 * retries, no JSON parsing: a call is ok when the status is 200 and the body
 * is non-empty.  Prints one JSON line:
 *   {"n":N,"ok":K,"wall_s":..,"cpu_user_s":..,"cpu_sys_s":..}
 * where the times cover the request loop only (getrusage(RUSAGE_SELF) and
 * CLOCK_MONOTONIC).  Exit status: 0 when every call was ok, 1 otherwise,
 * 2 on usage or setup errors.
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

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s URL N\n", argv[0]);
    return 2;
  }
  const char *url = argv[1];
  char *end;
  long n = strtol(argv[2], &end, 10);
  if (*end || n < 0) {
    fprintf(stderr, "%s: N must be a non-negative integer\n", argv[0]);
    return 2;
  }

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 2;
  CURLM *m = curl_multi_init();
  CURL *e = curl_easy_init();
  if (!m || !e) return 2;

  struct curl_slist *hdr = NULL;
  hdr = curl_slist_append(hdr, "Content-Type: application/json");
  hdr = curl_slist_append(hdr, "Authorization: Bearer bench-key");
  hdr = curl_slist_append(hdr, "Expect:");
  if (!hdr) return 2;

  sink s = {0};
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, BODY);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(sizeof BODY - 1));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "bench-ref-curl");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);

  long ok = 0;
  struct rusage r0, r1;
  double t0 = mono_s();
  getrusage(RUSAGE_SELF, &r0);
  for (long i = 0; i < n; i++) {
    s.len = 0;
    CURLcode rc = run_one(m, e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status == 200 && s.len > 0) {
      ok++;
    } else if (ok + 5 > i) { /* report the first few failures only */
      fprintf(stderr, "bench-ref-curl: call %ld: %s, status %ld, %zu body bytes\n", i + 1,
              curl_easy_strerror(rc), status, s.len);
    }
  }
  getrusage(RUSAGE_SELF, &r1);
  double t1 = mono_s();

  printf("{\"n\":%ld,\"ok\":%ld,\"wall_s\":%.6f,\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f}\n", n, ok,
         t1 - t0, tv_s(r1.ru_utime) - tv_s(r0.ru_utime), tv_s(r1.ru_stime) - tv_s(r0.ru_stime));

  curl_multi_cleanup(m);
  curl_easy_cleanup(e);
  curl_slist_free_all(hdr);
  curl_global_cleanup();
  return ok == n ? 0 : 1;
}
