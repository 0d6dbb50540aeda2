# quic-portal: the two commands a newcomer needs are `make demo` and `make test`.
# Everything else is here for developers. Each target installs missing Debian
# packages first (scripts/deps.sh), then builds with CMake.

BUILD      ?= build
BUILD_SAN  ?= build-san
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)
PREFIX     ?= /usr/local
CMAKE_ARGS ?=

.PHONY: build-san build-tsan all deps deps-test build test test-fast test-san bench bench-nat bench-nat-matrix bench-path bench-cli fuzz soak install demo demo-nat clean

all: build

# `make` installs what the build needs; `make test` also what the tests need.
deps:
	@bash scripts/deps.sh

deps-test:
	@bash scripts/deps.sh test

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_ARGS)

$(BUILD_TSAN)/CMakeCache.txt: | deps
	CC=clang cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DQP_TSAN=ON $(CMAKE_ARGS)

$(BUILD_SAN)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DQP_SANITIZE=ON $(CMAKE_ARGS)

# Re-run the configure step: a build first made by `make` (no test packages)
# must find libcmocka once `make test` has installed it.
build: deps $(BUILD)/CMakeCache.txt
	@cmake $(BUILD) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-san: deps $(BUILD_SAN)/CMakeCache.txt
	cmake --build $(BUILD_SAN) -j $(JOBS)

# The whole suite: every C test in a normal build (with the NAT lab when
# root), then again under AddressSanitizer + UndefinedBehaviorSanitizer
# (minus the tests labelled slow: timers and the lab), then the Python
# package's tests with Debian's python3 and pytest, and `pip install` of the
# tree and of its sdist into venvs, offline, and every fuzzer for 5 s.
# A ThreadSanitizer build
# (clang) runs the tests labelled iothread (they drive the portal's I/O
# thread). Test labels: tests/CMakeLists.txt.
test: deps-test build build-san build-tsan
	cd $(BUILD) && ctest --output-on-failure -j 2
	cd $(BUILD_SAN) && ctest --output-on-failure -j 2 -LE slow
	cd $(BUILD_TSAN) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j 2 -LE slow -L iothread
	$(MAKE) -C python test PYTHON=/usr/bin/python3
	/usr/bin/python3 python/tests/pip_install_check.py
	FUZZ_SECONDS=5 bash tests/fuzz_smoke.sh $(BUILD_FUZZ) || [ $$? -eq 77 ]

# Resilience soak in the NAT lab (root): 10 min idle behind a 30 s UDP
# timeout, then 10 min of messages with a rebind every minute.
soak: deps-test build
	bash tests/lab/test_resilience.sh $(BUILD)/tests/lab_resilience soak

# Every libFuzzer target (fuzz/) for FUZZ_SECONDS each (default 300), clang.
fuzz: deps-test
	FUZZ_SECONDS=$${FUZZ_SECONDS:-300} bash tests/fuzz_smoke.sh $(BUILD_FUZZ)

build-tsan: deps $(BUILD_TSAN)/CMakeCache.txt
	cmake --build $(BUILD_TSAN) -j $(JOBS)

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j 2 -LE slow

bench: build
	bash bench/run.sh $(BUILD)

# Time to connect through the NAT lab (needs root).
bench-nat: deps-test build
	bash bench/traversal_bench.sh $(BUILD)

# README's NAT lab matrix: every NAT pair, port mapping (UPnP, NAT-PMP), TURN
# and IPv6 rows; path kind per side, median of 5 (needs root; about 5 min).
bench-nat-matrix: deps-test build
	flock -o /tmp/qp-lab.lock bash bench/nat_matrix.sh $(BUILD)

# QUIC against TCP between two namespaces over a 1500-byte-MTU path: direct,
# and through a delay/rate/loss forwarder at 20 ms RTT, 1 Gbit/s, with 0, 1
# and 2% random loss each way (needs root; bench/README.md).
bench-path: deps-test build
	bash bench/path_bench.sh $(BUILD)

# quic-portal send/receive of a 1 GiB file against pipe mode, same bytes, loopback.
bench-cli: build
	bash bench/cli_file_bench.sh $(BUILD)

install: build
	cmake --install $(BUILD)

demo: build
	bash scripts/demo.sh $(BUILD)

# The same across two NATs built from network namespaces (needs root).
demo-nat: deps-test build
	bash scripts/demo_nat.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_TSAN) $(BUILD_FUZZ)
