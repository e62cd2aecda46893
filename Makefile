# ReplayForge: daemons, the nginx module (against Debian's nginx-dev), unit
# tests and the prove suite.
#
#   make            build everything into build/
#   make test       run the whole suite (prove -r t)
#   make asan       build into build-asan/ with ASan+UBSan and run the suite
#   make demo       the main job: a local capture pipeline on loopback
#   make bench      benchmarks, results into bench/RESULTS.md

CC       ?= cc
BUILD    ?= build
SAN      ?=
OPT      ?= -O2
NGX_SRC  ?= /usr/share/nginx/src

CFLAGS_ALL = -std=gnu11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror \
	     -Wno-unused-parameter -fPIC -Icommon $(SAN) $(CFLAGS)
LDFLAGS_ALL = $(SAN) $(LDFLAGS)

# the part of common/ the nginx module links (see ./config)
MODULE_COMMON = common/rf_ring.c common/rf_record.c common/rf_crc32c.c \
		common/rf_buf.c
COMMON_SRCS = $(MODULE_COMMON) common/rf_conf.c common/rf_conf_parse.c \
	      common/rf_log.c common/rf_json.c common/rf_json_rec.c \
	      common/rf_ratelimit.c common/rf_http.c \
	      common/rf_sqlite.c common/rf_check.c common/rf_lua.c \
	      common/rf_lua_lib.c common/rf_lua_rec.c common/rf_lua_proxy.c \
	      common/rf_sha256.c
COMMON_HDRS = $(wildcard common/*.h)
COMMON_OBJS = $(COMMON_SRCS:%.c=$(BUILD)/%.o)
LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4) -lm

SPOOLD_SRCS = $(wildcard spoold/*.c)
SPOOLD_OBJS = $(SPOOLD_SRCS:%.c=$(BUILD)/%.o)
SPOOLD_LIBS = -lsqlite3 -lcurl -lzstd $(LUA_LIBS) -lpthread

RELAYD_SRCS = $(wildcard relayd/*.c)
RELAYD_OBJS = $(RELAYD_SRCS:%.c=$(BUILD)/%.o)
RELAYD_LIBS = -lsqlite3 -lmicrohttpd -lzstd -lz -lpthread
PLAYERD_SRCS = $(wildcard playerd/*.c)
PLAYERD_OBJS = $(PLAYERD_SRCS:%.c=$(BUILD)/%.o)
APR_CFLAGS  := $(shell pkg-config --cflags apr-1 apr-util-1 2>/dev/null)
APR_LIBS    := -laprutil-1 -lapr-1
PLAYERD_LIBS = -lsqlite3 -lmicrohttpd -lcurl -lzstd $(APR_LIBS) $(LUA_LIBS) \
	       -lpthread

# the bucket engine, also linked by its unit test
RELAY_BUCKET_OBJS = $(BUILD)/relayd/relay_bucket.o \
		    $(BUILD)/relayd/relay_bucket_writer.o \
		    $(BUILD)/relayd/relay_bucket_txn.o \
		    $(BUILD)/relayd/relay_bucket_retain.o \
		    $(BUILD)/relayd/relay_bucket_stats.o \
		    $(BUILD)/relayd/relay_store.o

UNIT_SRCS   = $(wildcard t/unit/*.c)
UNIT_BINS   = $(UNIT_SRCS:t/unit/%.c=$(BUILD)/unit/%)

MODULE      = $(BUILD)/ngx_http_replayforge_module.so
NGX_BUILD   = $(BUILD)/nginx

.PHONY: all test asan demo bench clean

all: $(BUILD)/rf-spoold $(BUILD)/rf-relayd $(BUILD)/rf-playerd $(MODULE) \
     $(UNIT_BINS)

$(BUILD)/%.o: %.c $(COMMON_HDRS) $(wildcard spoold/*.h relayd/*.h playerd/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/common/rf_lua.o $(BUILD)/common/rf_lua_lib.o \
$(BUILD)/common/rf_lua_rec.o $(BUILD)/common/rf_lua_proxy.o: $(BUILD)/%.o: %.c \
		$(COMMON_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LUA_CFLAGS) -c -o $@ $<

$(BUILD)/libreplayforge.a: $(COMMON_OBJS)
	ar rcs $@ $^

$(BUILD)/rf-spoold: $(SPOOLD_OBJS) $(BUILD)/libreplayforge.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(SPOOLD_LIBS)

$(BUILD)/rf-relayd: $(RELAYD_OBJS) $(BUILD)/libreplayforge.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(RELAYD_LIBS)

$(BUILD)/playerd/%.o: playerd/%.c $(COMMON_HDRS) $(wildcard playerd/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(APR_CFLAGS) -c -o $@ $<

$(BUILD)/rf-playerd: $(PLAYERD_OBJS) $(BUILD)/libreplayforge.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PLAYERD_LIBS)

$(BUILD)/unit/bucket_test: t/unit/bucket_test.c $(RELAY_BUCKET_OBJS) \
			   $(BUILD)/libreplayforge.a $(COMMON_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Irelayd $(LDFLAGS_ALL) -o $@ $< \
	    $(RELAY_BUCKET_OBJS) $(BUILD)/libreplayforge.a \
	    -lcmocka -lsqlite3 -lpthread

$(BUILD)/unit/lua_test: t/unit/lua_test.c $(BUILD)/libreplayforge.a $(COMMON_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libreplayforge.a \
	    -lcmocka $(LUA_LIBS) -lpthread

$(BUILD)/unit/%: t/unit/%.c $(BUILD)/libreplayforge.a $(COMMON_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libreplayforge.a \
	    -lcmocka -lpthread

# The module is built by nginx's own build system from a private copy of the
# packaged source tree, configured with the packaged binary's flags, so that
# its signature matches /usr/sbin/nginx (--with-compat).
$(NGX_BUILD)/objs/Makefile: config
	rm -rf $(NGX_BUILD)
	mkdir -p $(NGX_BUILD)
	cp -r $(NGX_SRC)/. $(NGX_BUILD)/
	cd $(NGX_BUILD) && bash -c '. ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="-g -O2 $(SAN)" --with-ld-opt="$(SAN)" \
	        --add-dynamic-module=$(CURDIR)' > configure.log 2>&1 \
	    || { tail -20 $(NGX_BUILD)/configure.log; exit 1; }

$(MODULE): $(NGX_BUILD)/objs/Makefile ngx_module/ngx_http_replayforge_module.c \
	   $(MODULE_COMMON) $(COMMON_HDRS)
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_replayforge_module.so $@

test: all
	prove -r t

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer \
	         -fno-sanitize-recover=all" all
	RF_BUILD=build-asan RF_ASAN=1 prove -r t

demo: all
	./scripts/demo

$(BUILD)/bench/ringfill: bench/ringfill.c $(BUILD)/libreplayforge.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libreplayforge.a

# rf-relayd's load generator and SQLite baseline (bench/relay)
$(BUILD)/bench/relayload: bench/relayload.c $(BUILD)/libreplayforge.a \
			   $(COMMON_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libreplayforge.a \
	    -lcurl -lzstd -lsqlite3 -lpthread

bench: all $(BUILD)/bench/ringfill $(BUILD)/bench/relayload
	./bench/capture
	./bench/instructions
	./bench/relay
	./bench/replay
	./bench/lua
	./bench/buffer

clean:
	rm -rf build build-asan

# the dashboard page is embedded into the binary (relay_dashboard.c)
$(BUILD)/relayd/relay_dashboard.o: relayd/relay_dashboard.html
