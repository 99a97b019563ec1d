# lmz - on a fresh machine (CI, .ci/run, runs make test, then make check):
#   make run    install missing Debian packages, build, start the main job
#   make test   install missing packages, build, run every test (ctest)
#               (install-root.debian is skipped there: make test-install-root)
#   make check  the unit, integration and cluster tests under ASan+UBSan
#               (build-asan/) and then under TSan (build-tsan/); any
#               sanitizer report fails it
# Everything else is plain CMake in build/ (binaries in build/bin/).
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

# clang builds the fuzz targets too; `make test CC=gcc` builds without them.
ifeq ($(origin CC),default)
CC := clang
endif

.PHONY: all deps configure build run test test-install-root bench asan tsan check install package clean distclean

all: build

deps:
	@bash scripts/install-deps.sh

# Re-running cmake on a configured tree is cheap and repairs a failed one.
configure: deps
	@if [ -f $(BUILD)/CMakeCache.txt ]; then cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null; \
	 else cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=$(CC) $(CMAKE_FLAGS); fi

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@bash scripts/run-main.sh $(BUILD)

test: build
	@bash scripts/install-test-deps.sh
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

bench: build
	bench/run

# make install [PREFIX=/usr/local]: lmzd, lmz, headers, pkg-config files, the
# test kit, examples, web files, the systemd unit (cmake/install.cmake).
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# make package: the Debian package (CPack) in $(BUILD)/lmz_<version>_<arch>.deb
package: build
	cd $(BUILD) && cpack -G DEB

# make test-install-root: the .deb installed with apt on a clean Debian 12
# root booted with systemd as PID 1 (systemd-nspawn), then `lmz init`, the
# app as lmzd@hello, calls from the host (tests/install/root.sh). Root only;
# downloads (the root once, cached in /var/cache/lmz-test); minutes. In
# `make test` this test is listed as skipped.
test-install-root: build
	@command -v systemd-nspawn >/dev/null && command -v debootstrap >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap systemd-container
	cd $(BUILD) && LMZ_TEST_ROOTFS=1 ctest --output-on-failure -L '^install-root$$' $(CTEST_FLAGS)

# Sanitizer builds, each in its own folder (-O1: sanitized tests run faster;
# no benches; no fuzz targets, they keep their ASan run in `make test`).
# `make asan && (cd build-asan && ctest)`, likewise tsan.
SAN_FLAGS = -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 -DLMZ_BUILD_BENCH=OFF -DLMZ_FUZZ=OFF
asan:
	$(MAKE) build BUILD=build-asan CMAKE_FLAGS="$(CMAKE_FLAGS) $(SAN_FLAGS) -DLMZ_ASAN=ON"
tsan:
	$(MAKE) build BUILD=build-tsan CMAKE_FLAGS="$(CMAKE_FLAGS) $(SAN_FLAGS) -DLMZ_TSAN=ON"

# One suite after the other (2 cores); the first failure stops it. A test
# fails on a report from any process it started (tests/san_run.sh). A
# failed test runs once more (sanitized code is 2-30x slower: a bound can
# be missed), but what no retry excuses - any sanitizer report, any
# replication history violation - is also written to $(FINDINGS), and a
# non-empty file fails the suite. build.deps_direction checks sources,
# not code: it runs in `make test` only.
SAN_CTEST = ctest --output-on-failure -j $(JOBS) -L '^(unit|integration|cluster)$$' \
	-E '^build\.' --repeat until-pass:2 $(CTEST_FLAGS)
FINDINGS = san-findings.log
define san_suite
	rm -f $(1)/$(FINDINGS)
	cd $(1) && LMZ_FINDINGS=$(CURDIR)/$(1)/$(FINDINGS) $(SAN_CTEST)
	@if [ -s $(1)/$(FINDINGS) ]; then echo "make check: findings in $(1) (a retry does not excuse them):"; \
	 cat $(1)/$(FINDINGS); exit 1; fi
endef
check:
	@bash scripts/install-test-deps.sh
	$(MAKE) asan
	$(call san_suite,build-asan)
	$(MAKE) tsan
	$(call san_suite,build-tsan)

clean:
	cmake --build $(BUILD) --target clean 2>/dev/null || true

distclean:
	rm -rf $(BUILD) build-asan build-tsan
