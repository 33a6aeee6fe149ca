# labgw — top-level build. `make help` lists the targets.
#
# Out-of-tree: everything lands in $(BUILD) (default build/). `make asan`
# uses build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer.

BUILD ?= build
PREFIX ?= /usr
SYSCONFDIR ?= /etc
DESTDIR ?=
VERSION := $(shell cat VERSION)
PYTHON ?= /usr/bin/python3

CC ?= cc
PKGS := libuv libwebsockets jansson inih libsystemd libmosquitto openssl sqlite3
# libnl: headers for everyone, the library only for the wlan module and its tests
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) libnl-genl-3.0 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wformat=2 -Wno-format-truncation -Wno-unused-parameter
OPT ?= -O2 -g
SAN ?=
CPPFLAGS_ALL := -Idaemon -Idaemon/include -Iplugins/shared -D_GNU_SOURCE -DLABGW_VERSION='"$(VERSION)"' \
	-DLABGW_PLUGIN_DIR='"$(PREFIX)/lib/labgw/plugins"' \
	-DLABGW_WEB_ROOT='"$(PREFIX)/share/labgw/web"' $(CPPFLAGS)
CFLAGS_ALL = -std=gnu11 $(OPT) $(SAN) $(WARN) -fno-common $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SAN) $(LDFLAGS)

# The daemon: everything in daemon/ but main.c goes into a static library so
# that unit tests link the same objects.
DAEMON_SRCS := $(filter-out daemon/main.c,$(wildcard daemon/*.c)) plugins/shared/lora_airtime.c \
	plugins/shared/base64.c
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/obj/%.o)
LIBDAEMON := $(BUILD)/liblabgwd.a

# Radio modules: one .so per folder under plugins/ (not shared/), built from
# the folder's .c files plus the pure helpers it lists in <name>_SHARED.
PLUGINS := sim lorawan ble wlan cellular
sim_SHARED := plugins/shared/lorawan_crypto.c plugins/shared/lora_airtime.c \
	plugins/shared/base64.c plugins/ble/ad.c plugins/ble/adv.c
sim_LIBS = $(shell pkg-config --libs jansson libcrypto)
lorawan_SHARED := plugins/shared/lorawan_crypto.c plugins/shared/lora_airtime.c \
	plugins/shared/base64.c
lorawan_LIBS = $(shell pkg-config --libs jansson libcrypto)
ble_SHARED := plugins/shared/base64.c plugins/shared/busloop.c
ble_LIBS = $(shell pkg-config --libs libsystemd libcrypto jansson)
wlan_SHARED :=
wlan_LIBS = $(shell pkg-config --libs libnl-genl-3.0 jansson)
cellular_SHARED := plugins/shared/busloop.c
cellular_LIBS = $(shell pkg-config --libs libsystemd jansson)
PLUGIN_SOS := $(PLUGINS:%=$(BUILD)/plugins/%.so)
PIC_FLAGS := -fPIC -fvisibility=hidden
# Object lists are computed through functions: a literal % in a pattern
# rule's prerequisites would be replaced by the stem.
pic_objs = $(patsubst %.c,$(BUILD)/pic/%.o,$(1))
obj_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

# Plugin-host test modules (tests/unit/modules/*.c → build/tests/modules/*.so)
TEST_MODULES := $(patsubst tests/unit/modules/%.c,$(BUILD)/tests/modules/%.so,$(wildcard tests/unit/modules/*.c))

# Unit tests: tests/unit/test_<name>.c → build/tests/test_<name>. Pure plugin
# code a test needs is named in test_<name>_EXTRA.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
test_sim_gen_EXTRA := plugins/sim/gen.c plugins/shared/lorawan_crypto.c
test_lorawan_crypto_EXTRA := plugins/shared/lorawan_crypto.c
test_lorawan_gwmp_EXTRA := plugins/lorawan/gwmp.c plugins/lorawan/jsontok.c
test_lorawan_jsontok_EXTRA := plugins/lorawan/jsontok.c
test_lorawan_gwmp_push_EXTRA := plugins/lorawan/gwmp.c plugins/lorawan/jsontok.c
test_lorawan_phy_EXTRA := plugins/lorawan/phy.c plugins/shared/lorawan_crypto.c
test_lorawan_dutycycle_EXTRA := plugins/lorawan/dutycycle.c
test_ble_ad_EXTRA := plugins/ble/ad.c plugins/sim/gen.c plugins/shared/lorawan_crypto.c
test_ble_rpa_EXTRA := plugins/ble/rpa.c
test_wlan_nlparse_EXTRA := plugins/wlan/nlparse.c
test_wlan_nlparse_LIBS = $(shell pkg-config --libs libnl-genl-3.0)
test_cellular_mm_EXTRA := plugins/cellular/mm.c

.PHONY: all help deps check check-unit check-integration check-vm check-browser check-asan check-fuzz \
	run asan fuzz soak fmt install deb clean bench bench-lorawan bench-ble bench-fanout \
	bench-scaleout bench-summary

# Benchmark programs (bench/*.c → build/bench/*): built with everything so
# that they keep compiling, run only by `make bench*`, never by `make check`.
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
fake_bluez_LIBS = $(shell pkg-config --libs libsystemd)
# C tools (tools/*.c → build/tools/*): the load generator of `make bench`
TOOL_BINS := $(patsubst tools/%.c,$(BUILD)/tools/%,$(wildcard tools/*.c))
labgw-load_LIBS = $(shell pkg-config --libs libuv) -lm

all: $(BUILD)/labgwd $(PLUGIN_SOS) $(TEST_MODULES) $(UNIT_BINS) $(BENCH_BINS) $(TOOL_BINS)

help:
	@echo "make            build labgwd, radio modules and tests into $(BUILD)/"
	@echo "make run        run labgwd with simulated radios and a private broker"
	@echo "make check      install missing packages, build, run every test suite"
	@echo "make check-vm   run the real-radio tests in a qemu VM (tests/vm/)"
	@echo "make check-browser  run the console and kiosk tests in headless Chromium"
	@echo "make asan       build and test everything with ASan+UBSan (build-asan/)"
	@echo "make fuzz       run every libFuzzer target for FUZZ_SECONDS (default 30) each"
	@echo "make soak       the sim at SOAK_RATE frames/s for SOAK_SECONDS (default 600): RSS and fds flat"
	@echo "make check-asan unit tests and a subset of the integration tests under ASan+UBSan (in make check)"
	@echo "make check-fuzz every fuzz target for CHECK_FUZZ_SECONDS (default 3) (in make check)"
	@echo "make bench      run every benchmark against mosquitto and libwebsockets, then the"
	@echo "                summary table (bench/results/summary.md); never part of make check"
	@echo "make deps       install the Debian packages the build and tests need"
	@echo "make fmt        format the C sources with clang-format"
	@echo "make install    install under DESTDIR/PREFIX (default /usr)"
	@echo "make deb        build the Debian packages (and run lintian) into $(BUILD)/deb/"

deps:
	@tools/deps.sh
	@tools/browser-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(PIC_FLAGS) -MMD -MP -c $< -o $@

# rest.c compiles the OpenAPI and AsyncAPI documents in (.incbin "docs/...": the
# path is relative to this directory, where the compiler runs)
$(BUILD)/obj/daemon/rest.o: docs/openapi.json docs/asyncapi.yaml

$(LIBDAEMON): $(DAEMON_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/labgwd: $(BUILD)/obj/daemon/main.o $(LIBDAEMON)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) -ldl -lm

# keep intermediate objects (test and plugin helpers) between runs
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(call pic_objs,$$(wildcard plugins/$$*/*.c) $$($$*_SHARED))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -shared -Wl,-z,defs -Wl,--as-needed -o $@ $^ $($*_LIBS) -lm

$(BUILD)/tests/modules/%.so: $(BUILD)/pic/tests/unit/modules/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -shared -o $@ $^

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $$(call obj_objs,$$(test_$$*_EXTRA)) $(LIBDAEMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) $(test_$*_LIBS) -lcmocka -ldl -lm

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $($*_LIBS)

$(BUILD)/tools/%: $(BUILD)/obj/tools/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $($*_LIBS)

check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory check-unit check-integration check-browser check-vm
	@$(MAKE) --no-print-directory check-asan check-fuzz

check-unit: all
	@tools/run-unit.sh $(BUILD)

# the 15 slowest tests are listed at the end: where the time of `make check` goes
check-integration: all
	LABGW_BUILD=$(BUILD) $(PYTHON) -m pytest -q --durations=15 tests/integration

# The console and the kiosk in Debian's Chromium (headless, through npm's
# playwright-core) against labgwd with sim radios; screenshots land in
# $(BUILD)/browser-artifacts/.
check-browser: all
	@tools/browser-deps.sh
	cd tests/browser && LABGW_BUILD=$(abspath $(BUILD)) PYTHON=$(PYTHON) \
		node --test --test-concurrency=1 *.test.js

# Real virtual radios in a qemu VM (tests/vm/README.md); skipped, with the
# reason, where the VM cannot run. The kernel is cached in build/vm-cache/.
check-vm: all
	LABGW_BUILD=$(BUILD) $(PYTHON) -m pytest -q tests/vm

# Every benchmark of issue 10, then the summary table (bench/results/summary.md):
# fan-out against mosquitto and libwebsockets' test server (P1-P7,
# bench/fanout.py with build/tools/labgw-load; FANOUT_ARGS e.g. "--repeat 1
# --only P1,P4"), GWMP ingest of the lorawan module and D-Bus advert ingest
# of the ble module (from bench/fake_bluez on a private dbus-daemon), each
# against the sim radio at the same rate (P8; BENCH_ARGS e.g. "--rates 2600
# --repeat 1 --duration 20"), and three gateways bridged to a central broker.
bench: all
	@$(MAKE) --no-print-directory bench-fanout bench-lorawan bench-ble bench-scaleout
	$(PYTHON) bench/summary.py

bench-fanout: all
	LABGW_BUILD=$(BUILD) $(PYTHON) bench/fanout.py --build $(BUILD) $(FANOUT_ARGS)

bench-scaleout: all
	LABGW_BUILD=$(BUILD) $(PYTHON) bench/scaleout.py

bench-summary:
	$(PYTHON) bench/summary.py

bench-lorawan: all
	$(PYTHON) bench/lorawan_ingest.py --build $(BUILD) $(BENCH_ARGS)

bench-ble: all
	$(PYTHON) bench/ble_ingest.py --build $(BUILD) $(BENCH_ARGS)

run: deps
	@$(MAKE) --no-print-directory all
	@tools/run.sh $(BUILD)

ASAN_VARS = BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
asan: deps
	@$(MAKE) --no-print-directory $(ASAN_VARS) check-unit check-integration

# Part of `make check` (issue 11): every unit test, and the integration tests
# of the code that parses outside input or holds long-lived state, under
# ASan+UBSan. Measured on the shared 2-core dev machine: the whole
# integration suite under ASan takes ~10 min (the plain one 6.5 min), too
# long to add to every check; this subset — the front-ends, the MQTT bridge
# with its spool (10 s outage here, 30 s in the plain run), durability, TLS
# and the attack tests — takes ~80 s, plus ~100 s to build build-asan/ from
# scratch. `make asan` still runs
# everything. ASAN_TESTS overrides the list; the builds use CHECK_JOBS jobs.
CHECK_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
ASAN_TESTS ?= test_ws.py test_http.py test_rest.py test_mqtt.py test_mqtt_frames_link.py \
	test_durability.py test_spool.py test_tls.py test_attacks.py
check-asan:
	@$(MAKE) --no-print-directory -j$(CHECK_JOBS) $(ASAN_VARS) all
	@$(MAKE) --no-print-directory $(ASAN_VARS) check-unit
	cd tests/integration && LABGW_BUILD=$(abspath build-asan) LABGW_SPOOL_OUTAGE=10 \
		$(PYTHON) -m pytest -q $(ASAN_TESTS)

# The long soak: tests/integration/test_soak.py for SOAK_SECONDS at
# SOAK_RATE frames/s (`make check` runs the same test for 30 s).
SOAK_SECONDS ?= 600
SOAK_RATE ?= 2000
soak: all
	cd tests/integration && LABGW_BUILD=$(abspath $(BUILD)) LABGW_SOAK_SECONDS=$(SOAK_SECONDS) \
		LABGW_SOAK_RATE=$(SOAK_RATE) $(PYTHON) -m pytest -q -s test_soak.py

# Part of `make check`: every libFuzzer target briefly (its seed corpus, with
# the inputs of crashes found before, then CHECK_FUZZ_SECONDS of fuzzing
# each): ~110 s for the 13 targets, most of it building them.
CHECK_FUZZ_SECONDS ?= 3
check-fuzz:
	@$(MAKE) --no-print-directory -j$(CHECK_JOBS) fuzz FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS)

# libFuzzer targets (tests/fuzz/fuzz_<name>.c), built with clang and run for a
# bounded time each; new inputs go to build-fuzz/corpus/<name>, seeded from
# tests/fuzz/corpus/<name>. A crash leaves its input in build-fuzz/ and fails.
# Pure plugin code a target needs (not in liblabgwd.a) is named in
# fuzz_<name>_EXTRA; tests/fuzz/fuzz_<name>.dict, when there is one, is its
# libFuzzer dictionary.
FUZZ_SECONDS ?= 30
FUZZERS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
fuzz_gwmp_EXTRA := plugins/lorawan/gwmp.c plugins/lorawan/jsontok.c
# the former jansson reader of PUSH_DATA is the reference (test code)
fuzz_gwmp_json_EXTRA := plugins/lorawan/gwmp.c plugins/lorawan/jsontok.c \
	tests/fuzz/gwmp_push_jansson.c
fuzz_lorawan_phy_EXTRA := plugins/lorawan/phy.c plugins/shared/lorawan_crypto.c
fuzz_ble_ad_EXTRA := plugins/ble/ad.c plugins/ble/rpa.c
fuzz_wlan_nl_EXTRA := plugins/wlan/nlparse.c
fuzz_cellular_mm_EXTRA := plugins/cellular/mm.c
fuzz: deps
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang OPT="-O1 -g" \
		SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" CFLAGS="-Wno-unknown-warning-option" \
		build-fuzz/liblabgwd.a
	@set -e; $(foreach f,$(FUZZERS),fuzz_$(f)_EXTRA="$(fuzz_$(f)_EXTRA)";) \
	for f in $(FUZZERS); do \
		eval extra=\"\$$fuzz_$${f}_EXTRA\"; \
		clang -std=gnu11 -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer $(CPPFLAGS_ALL) $(PKG_CFLAGS) \
			tests/fuzz/fuzz_$$f.c $$extra build-fuzz/liblabgwd.a $(PKG_LIBS) \
			$$(pkg-config --libs libnl-genl-3.0) -ldl -lm \
			-o build-fuzz/fuzz_$$f; \
		mkdir -p build-fuzz/corpus/$$f; \
		echo "fuzz_$$f: $(FUZZ_SECONDS) s"; \
		dict=; [ -f tests/fuzz/fuzz_$$f.dict ] && dict=-dict=../tests/fuzz/fuzz_$$f.dict; \
		(cd build-fuzz && ./fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			-print_final_stats=1 $$dict corpus/$$f ../tests/fuzz/corpus/$$f \
			> fuzz_$$f.log 2>&1) || { tail -n 40 build-fuzz/fuzz_$$f.log; exit 1; }; \
		grep -E '^stat::(number_of_executed_units|new_units_added)' build-fuzz/fuzz_$$f.log; \
	done

fmt:
	clang-format -i $(wildcard daemon/*.c daemon/*.h daemon/include/labgw/*.h plugins/*/*.c plugins/*/*.h tests/unit/*.c tests/unit/modules/*.c tools/*.c bench/*.c)

# where systemd looks for units and sysusers files on this system
SYSTEMDUNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
SYSUSERSDIR ?= $(shell pkg-config --variable=sysusersdir systemd 2>/dev/null || echo /usr/lib/sysusers.d)

install: $(BUILD)/labgwd $(PLUGIN_SOS)
	install -D -m 0755 $(BUILD)/labgwd $(DESTDIR)$(PREFIX)/sbin/labgwd
	install -D -m 0755 tools/labgwctl $(DESTDIR)$(PREFIX)/bin/labgwctl
	install -d $(DESTDIR)$(PREFIX)/lib/labgw/plugins
	install -m 0644 $(PLUGIN_SOS) $(DESTDIR)$(PREFIX)/lib/labgw/plugins/
	install -D -m 0644 daemon/include/labgw/plugin.h $(DESTDIR)$(PREFIX)/include/labgw/plugin.h
	install -d $(DESTDIR)$(PREFIX)/share/labgw/web
	cp -R web/. $(DESTDIR)$(PREFIX)/share/labgw/web/
	install -D -m 0644 etc/labgw.conf $(DESTDIR)$(SYSCONFDIR)/labgw/labgw.conf
	install -D -m 0644 systemd/labgwd.service $(DESTDIR)$(SYSTEMDUNITDIR)/labgwd.service
	install -D -m 0644 systemd/labgw.sysusers $(DESTDIR)$(SYSUSERSDIR)/labgw.conf
	install -D -m 0644 docs/man/labgwd.8 $(DESTDIR)$(PREFIX)/share/man/man8/labgwd.8
	install -D -m 0644 docs/man/labgwctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/labgwctl.1

# Debian packages (packaging/debian) built from a copy of the working tree in
# $(BUILD)/deb/; DEB_VERSION (default: VERSION) names a newer build, e.g. to
# test upgrades. The .debs and lintian's verdict land in $(BUILD)/deb/.
deb:
	@tools/mkdeb.sh $(BUILD)/deb $(DEB_VERSION)

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' -type f -not -path '*/deb/*' 2>/dev/null)
