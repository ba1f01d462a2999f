SHELL := /bin/bash
# llmrelay — see README.md. `make` builds the Lua module for Lua 5.4,
# `make LUA=luajit` for OpenResty's LuaJIT; `make test` runs every test.
LUA ?= lua5.4
CC ?= cc
CLANG ?= clang
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes
STD := -std=gnu99

ifeq ($(LUA),luajit)
  LUA_INC ?= $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
else
  LUA_INC ?= $(shell pkg-config --cflags $(LUA) 2>/dev/null || echo -I/usr/include/$(LUA))
endif
CURL_CFLAGS ?= $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS ?= $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
# OpenSSL: TLS to Redis (rediss://) in csrc/sock.c
SSL_LIBS ?= $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)

BUILD := build/$(LUA)
POLICY := errors api reqcheck backoff hints breaker limiter ratelearn jsoncheck jsonmodel models fallback pool queue classify relay sse answer evbuf outcome shared scrub http1 resp fleet urlenc idset
CORE := $(POLICY) clock sock transport_curl transport_curl_step l_common l_route l_fleet l_client l_relay l_util l_scrub l_http1 l_json l_resp l_redis l_lock l_cli llmrelay_core
CORE_OBJ := $(CORE:%=$(BUILD)/obj/%.o)
HEADERS := $(wildcard csrc/*.h)
CTESTS := $(patsubst spec/c/%.c,%,$(wildcard spec/c/test_*.c))
FUZZERS := $(patsubst spec/fuzz/%.c,%,$(wildcard spec/fuzz/fuzz_*.c))
POLICY_SRC := $(POLICY:%=csrc/%.c)
FUZZ_SECONDS ?= 10

.PHONY: all mock ctest test sanitize valgrind fuzz fuzz-build bench demo clean luajit-check

all: $(BUILD)/llmrelay/core.so mock

$(BUILD)/obj/%.o: csrc/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(STD) $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden $(LUA_INC) $(CURL_CFLAGS) -Icsrc -c $< -o $@

$(BUILD)/llmrelay/core.so: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared $(CFLAGS) -o $@ $(CORE_OBJ) $(CURL_LIBS) $(SSL_LIBS) -lm

# The project's own OpenAI-compatible mock server (tests, demo, bench).
mock: build/mock-llm
build/mock-llm: $(wildcard tools/mock_*.c tools/mock*.h)
	@mkdir -p build
	$(CC) $(STD) -O2 -g $(WARN) -o $@ $(filter %.c,$^) -lm

# C unit tests of the sans-I/O policy files: plain C, no Lua, no libcurl.
# TEST_DIR/TEST_FLAGS let `make sanitize` build a second, instrumented set.
TEST_DIR ?= build/test
$(TEST_DIR)/%: spec/c/%.c $(POLICY_SRC) $(HEADERS) spec/c/ctest.h
	@mkdir -p $(TEST_DIR)
	$(CC) $(STD) -O1 -g $(WARN) $(TEST_FLAGS) -Icsrc $< $(POLICY_SRC) -lm -o $@

ctest: $(CTESTS:%=$(TEST_DIR)/%)
	@for t in $(CTESTS); do echo "== $$t"; $(TEST_DIR)/$$t || exit 1; done

test: all
	@./spec/run

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# The C tests under AddressSanitizer + UBSan, then the Lua specs against a
# sanitized core (the interpreter preloads libasan).
sanitize: all build/asan/llmrelay/core.so
	$(MAKE) ctest TEST_DIR=build/test-asan TEST_FLAGS="$(SAN)"
	./spec/run --asan

build/asan/llmrelay/core.so: $(CORE:%=csrc/%.c) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(STD) -O1 -g $(WARN) $(SAN) -shared -fPIC $(LUA_INC) $(CURL_CFLAGS) -Icsrc $(CORE:%=csrc/%.c) \
	  -o $@ $(CURL_LIBS) $(SSL_LIBS) -lm

# The C tests, then a whole client scenario against the mock, under valgrind.
valgrind: all ctest
	@for t in $(CTESTS); do echo "== valgrind $$t"; \
	  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite build/test/$$t \
	    >/dev/null || exit 1; done
	./spec/run --valgrind

# libFuzzer targets for every parser of untrusted input (clang).
fuzz-build: $(FUZZERS:%=build/fuzz/%)
build/fuzz/%: spec/fuzz/%.c $(POLICY_SRC) $(HEADERS) $(wildcard tools/*.c tools/*.h)
	@mkdir -p build/fuzz
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc $< $(POLICY_SRC) -lm -o $@

fuzz: fuzz-build
	@for f in $(FUZZERS); do name=$${f#fuzz_}; mkdir -p build/fuzz/corpus-$$name; \
	  echo "== $$f for $(FUZZ_SECONDS) s"; \
	  build/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/corpus-$$name spec/fuzz/corpus/$$name 2>&1 \
	    | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; done

# Speed and memory figures, as ratios against a raw libcurl client in the same run.
bench: all build/bench-ref-curl
	./bench/run

build/bench-ref-curl: bench/ref_curl.c
	@mkdir -p build
	$(CC) $(STD) -O2 $(WARN) $< -o $@ $(CURL_LIBS)

demo: all
	LUA_PATH="./?.lua;lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" lua5.4 examples/demo.lua

# Builds the LuaJIT module and runs the client scenario (the Lua layer, the
# core, the mock) in OpenResty's LuaJIT, through tools/luajit_host.c: Debian's
# libluajit2-5.1-dev ships no interpreter and its own luajit conflicts with it.
luajit-check: build/luajit-host
	$(MAKE) LUA=luajit
	LUA_PATH="./?.lua;lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/luajit/?.so;;" \
	  build/luajit-host -f spec/support/scenario.lua

build/luajit-host: tools/luajit_host.c
	@mkdir -p build
	$(CC) $(STD) -O1 $(WARN) $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1) \
	  $< -o $@ -lluajit-5.1

clean:
	rm -rf build
