-- The texts of `llmrelay --help` and `llmrelay batch --help` (cli.lua prints them).
-- prints them). Lua 5.1 / LuaJIT / 5.4.

local _M = {}

_M.MAIN = [[
Usage: llmrelay <command> [options]

Commands:
  batch INPUT.jsonl -o OUTPUT.jsonl [options]
                 run every request of an OpenAI Batch API input file through a
                 pool of OpenAI-compatible endpoints, resumably
                 (`llmrelay batch --help` for the details)

Options:
  -h, --help     this text
  --version      the version of llmrelay

Exit codes: 0 success, 1 some requests failed for good, 2 usage or setup
error, 3 internal error (for example the output could not be written),
130 interrupted (Ctrl-C; 143 SIGTERM, 129 SIGHUP).
]]

_M.BATCH = [[
Usage: llmrelay batch INPUT.jsonl -o OUTPUT.jsonl [-c config.lua] [--endpoint URL]...
                      [--concurrency N] [--max-attempts N] [--retry-failed]
                      [--redis URL] [--shard K/N] [--budget USD] [--dry-run]
                      [--errors FILE] [--model NAME] [--rpm N] [--tpm N]
                      [--summary-json FILE] [--quiet]

Sends every line of INPUT.jsonl (OpenAI Batch API input format; `-` reads
standard input) to the path its url names and writes one line per input line
to OUTPUT.jsonl (OpenAI Batch API output format), each written whole and
flushed as soon as its request finishes, in completion order.

Input, one JSON object a line (blank lines are ignored):
  {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions",
   "body": {"model": "...", "messages": [...], ...}}
  url is one of "/v1/chat/completions" (body with a "messages" array),
  "/v1/embeddings" (an "input"), "/v1/responses" (an "input") or
  "/v1/completions" (a "prompt"), or the same without "/v1"; one file may
  mix them. The body is sent as written to that path of the endpoint
  chosen; body.model routes the request to the endpoints serving that model.

Output, one JSON object a line:
  {"id": "batch_req_...", "custom_id": "req-1",
   "response": {"status_code": 200, "request_id": "<x-request-id>", "body": {...}},
   "error": null, "cost": 0.000123}
  "cost" (USD, from the usage the answer reported and the serving
  endpoint's prices) is there when the answer was priced: --budget adds
  them up on resume.
  A request that failed for good has "response": null, or the last HTTP
  answer {"status_code": N, "body": <its JSON, or null>}, and
  "error": {"code": <kind>, "message": "..."}, where kind is one of
  rate_limited server_error timeout connect http invalid_request
  circuit_open deadline decode cancelled.
  A bad input line (invalid JSON, custom_id missing, not a string or
  repeated, method not POST, another url, body not an object with what
  its url needs, a body the client would refuse (an empty "messages",
  say), body.stream set) gets
  "error": {"code": "invalid_request", "message": "line 12: ...", "line": 12}
  with "custom_id": null when the line names none, plus "line_hash" (what
  the line said and what was wrong with it). The first line with a
  custom_id is the real request; later lines with the same one are errors.
  Bad lines never stop the run. A UTF-8 byte order mark before line 1 is
  ignored.

Options:
  -o, --output FILE     the output file (required, but for --dry-run): a
                        regular file, not the input (nor a link to it), not
                        a device or a pipe (no stdout: the output is also
                        the resume record).
                        If it exists the run resumes: lines already answered
                        there are skipped.
  --errors FILE         failed requests and bad input lines go to FILE, not
                        OUTPUT (as the Batch API's error file); a resume reads
                        both: give the same --errors again
  -c, --config FILE     a Lua file returning the table given to llmrelay.new
                        (endpoints, retry, breaker, timeout, concurrency, ...)
  --endpoint URL        an endpoint's base URL, e.g. http://127.0.0.1:8080/v1
                        (repeatable; instead of -c). The api key is read from
                        the environment variable LLMRELAY_API_KEY if it is set
                        (at least 8 characters: a shorter one is refused).
  --concurrency N       requests in flight (default: the client's
                        concurrency, 64); raises the client's concurrency to N
  --max-attempts N      attempts per request, the first included (default 5;
                        overrides retry.max_attempts of the config)
  --retry-failed        on resume, also send again the requests whose earlier
                        answer was an error (bad input lines stay answered)
  --redis URL           share the pool's limits, throttles and breakers with
                        every llmrelay using this Redis and the same pool name:
                        redis://[user:password@]host:port[/db] (rediss:// for
                        TLS). Default: the environment variable LLMRELAY_REDIS,
                        else the config's own `redis`. Redis down: the run goes
                        on with local state. The password is never printed.
  --shard K/N           send only shard K of N of the input (K from 1 to N; 0
                        also means N, for 0..N-1 numbering): a line belongs to
                        one shard by its custom_id (by its line number when it
                        names none). Other shards' lines are skipped, not
                        answered. Each shard needs its own OUTPUT; together the
                        N outputs answer every input line exactly once.
  --budget USD          spend at most USD on the job (this run's answers plus
                        what earlier runs recorded in OUTPUT: each priced
                        answer's line carries its "cost"). Once spent, no new
                        line is taken; the requests in flight finish and are
                        written (an answer that came back was paid for, even
                        past USD); lines never sent are not written; exit 1
                        with "budget of $5.00 spent ($5.03); N of M lines
                        left". Re-run with a larger --budget to continue.
                        Every model in use (and its fallbacks) needs a price
                        on each endpoint serving it, else exit 2 at start;
                        the input is read once more up front to check. An
                        answer reporting no usage counts as $0 (a warning).
                        A request the config's own budget refused (error
                        kind "budget") was not sent: not written either.
  --dry-run             send nothing: read the input as a run would (same
                        checks, same --shard; with -o, lines already answered
                        there are not counted, and OUTPUT is not changed) and
                        print on stdout, per model: lines, estimated input
                        tokens (a quarter of the body's bytes), output tokens
                        (max_completion_tokens, else max_tokens, else 256)
                        and cost at the prices of the endpoints serving it
                        (cheapest..priciest), plus totals; exit 0. -o is
                        optional. With --budget it also says whether the
                        estimate fits what is left of it.
  --model NAME          send every line with body.model set to NAME (the
                        body's own "model" replaced, or added)
  --rpm N, --tpm N      requests / tokens per minute for every endpoint of the
                        pool (the config's, or the --endpoint ones),
                        overriding their own rpm / tpm
  --summary-json FILE   also write the summary as JSON to FILE: exit_code,
                        lines, answered, left, this_run {ok, failed, bad,
                        cancelled, lost}, earlier, attempts, retries, tokens,
                        cost, spend, endpoints [{name, ok, failed, attempts,
                        state, cost}], elapsed_s, stopped
  -q, --quiet           print nothing but errors
  -h, --help            this text

Resume: run the same command again after a crash, a Ctrl-C or kill -9.
Requests are matched by custom_id, bad input lines by their line number and
line_hash: a bad line changed since (fixed, say) is read again and sent, an
unchanged one keeps its answer. Only lines shaped as output lines count; an
existing OUTPUT with none is refused (exit 2), never overwritten. A torn last
line (a crash mid-write) is cut off, and requests recorded as "cancelled" are
sent again; the file is then rewritten through a temp file and a rename.
Every input line ends up with exactly one output line. An output is one
shard's: resuming it with another --shard (or none) is refused (exit 2).

Standard input (`-`): spooled to OUTPUT.input.jsonl first (the run reads
its input twice); removed once every line is answered, kept when the run
stops early: resume with that file as INPUT (it is removed once that run
answers every line) or with the same standard input again.

One run per output: OUTPUT.lock (the holder's pid inside) is flock(2)ed for
the whole run (and FILE.lock for --errors FILE); a second run on the same
OUTPUT (or errors file) exits 2 at once naming that pid. A run killed with kill -9 leaves the file but not its lock: the next
run takes it over.

Many hosts: run `llmrelay batch in.jsonl -o out-K.jsonl --shard K/N --redis
URL` on host K of N (same input, same config), then `cat out-*.jsonl`.

Ctrl-C, SIGTERM, SIGHUP: the first one stops taking new lines, waits for the
requests in flight and writes their answers; a second one (any of the three)
cancels them (written as "cancelled" errors, sent again by a re-run). No line
is ever half written. A failed write (disk full) ends the run at once, exit 3.

Progress goes to stderr: a bar redrawn in place when stderr is a terminal
(done/total, rate, ETA, retries, USD spent so far, endpoints whose breaker
is open), else a plain line every 2 s; a summary ends the run (counts, rate,
retries, token usage, per-endpoint ok/failed/attempts and state, and the USD
spent per endpoint and model). Spend is shown when the config gives
endpoints[i].prices. No api key is printed.

Exit codes:
  0    every line of OUTPUT is a successful answer
  1    some line of OUTPUT (from this run or an earlier one) is an error:
       a request that failed for good or a bad input line; or the budget
       was spent with lines left (--budget, or the config's budget)
  2    usage error, unreadable input, bad config, output not writable
  3    internal error during the run (for example a failed write)
  130  interrupted by Ctrl-C (143 by SIGTERM, 129 by SIGHUP: 128 + the first
       signal); re-run the same command to finish
]]

return _M
