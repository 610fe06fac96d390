# vbus top-level Makefile: it only delegates. See README.md.
#   make [all]            build everything (build/default)
#   make SAN=address,undefined | SAN=thread   sanitizer variant (build/asan, build/tsan)
#   make deps             install what the project needs (Debian 12, root), fetch the VM kernel
#   make kernel           build/kernel/vbus_vrdma.ko against the VM kernel's headers
#                         (`make all` builds it too when the headers are there)
#   make checkpatch       checkpatch.pl over kernel/ (when a kernel source is unpacked)
#   make test-kdebug      debug kernel (lockdep, KASAN) + kernel-backend tests; ~25 min, not CI
#   make test             unit tests (three variants) + device tests on soft-RoCE
#   make demo             soft-RoCE up (VM if needed), perftest figures: native, guest on the
#                         kernel backend and on the relay, guest-guest (RUNS=N runs each,
#                         ALL=1 adds ib_read_lat and ib_send_bw), then the same over a
#                         wire between two VMs (bench/wire; WIRE=0 leaves it out)
#   make bench            benchmarks (QUICK=1 for a short run, RUNS=N interleaved runs; the
#                         report ends with loopback against wire, bench/wire)
#   make soak             the long runs of the hardening tests (not in CI): guest-churn with
#                         1000 SIGKILLed guests per backend, guest-load for 2 minutes,
#                         guest-nest on the relay too (make test: the kernel backend),
#                         and bench-quick (bench/run --quick checked whole; soak-only)
#   make fuzz             every libFuzzer target SECONDS=N each (60); MERGE=1 adds new inputs
#                         to tests/fuzz-corpus/, TARGETS="fuzz-wqe ..." runs only those
#   make install          PREFIX=/usr/local DESTDIR=
#   V=1                   show commands
SUBDIRS := connector verbs-host/vrdma verbs-host verbs-guest tests bench
SAN_VARIANTS := address,undefined thread
PREFIX ?= /usr/local
MAKEFLAGS += --no-print-directory

.PHONY: all deps deps-check test unit demo bench soak fuzz install clean vm-kernel kernel checkpatch test-kdebug

all:
	@for d in $(SUBDIRS); do \
		if [ -f $$d/Makefile ]; then $(MAKE) -C $$d all || exit 1; fi; \
	done
ifeq ($(SAN),)
	@$(MAKE) -C kernel OPTIONAL=1
endif

# The kernel module (kernel/Makefile, docs/kernel-build.md): an error here when the headers
# are missing; `make all` only says so in one line.
kernel:
	@$(MAKE) -C kernel

checkpatch:
	@$(MAKE) -C kernel checkpatch

# Not in CI: builds Debian's linux-source-6.1 with lockdep and KASAN (~25 min on 2 cores).
test-kdebug: deps-check
	@tests/vm/kdebug

# Only what unit tests need, for one variant (used for the sanitizer variants).
unit:
	@for d in connector verbs-host/vrdma verbs-host verbs-guest tests; do \
		if [ -f $$d/Makefile ]; then $(MAKE) -C $$d all || exit 1; fi; \
	done

deps:
	@scripts/deps

deps-check:
	@scripts/deps --if-missing

# (the builds use every core: make test is run as one command, without -j)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps-check
	@$(MAKE) -j$(JOBS) all
	@for s in $(SAN_VARIANTS); do $(MAKE) -j$(JOBS) SAN=$$s unit || exit 1; done
	@tests/run

demo: deps-check all
	@bench/demo $(if $(RUNS),--runs $(RUNS)) $(if $(ALL),--all) $(if $(filter 0,$(WIRE)),--no-wire)

bench: deps-check all
	@bench/run $(if $(QUICK),--quick) $(if $(RUNS),--runs $(RUNS))

# Not in CI: make test runs the same tests shorter (docs/testing.md, Soak): the hardening
# tests' long forms, the native controls and every perftest-matrix path on both backends
# (VBUS_FULL=1), and bench/run --quick checked whole.
soak: deps-check all
	@VBUS_SOAK=1 VBUS_FULL=1 VBUS_CHURN_N=1000 VBUS_LOAD_SECONDS=120 VBUS_SCRIBBLE_SECONDS=30 tests/run --device \
		-k guest-churn,guest-load,guest-scribble,guest-perftest-matrix,guest-integrity,guest-qperf,guest-nest,guest-nest-pt
	@VBUS_SOAK=1 VBUS_BENCH_MODE=quick tests/run --unit -k bench-quick

# Not in CI (make test runs the same targets 5 s each): tests/unit/fuzz.sh with longer
# runs; crash inputs are kept in tests/fuzz-corpus/TARGET/crashes/ (docs/testing.md, Fuzzing).
SECONDS ?= 60
fuzz:
	@VBUS_FUZZ_SECONDS=$(SECONDS) VBUS_FUZZ_MERGE=$(MERGE) VBUS_FUZZ_TARGETS="$(TARGETS)" \
		VBUS_FUZZ_KEEP=1 VBUS_FUZZ_OUT="$(CURDIR)/build/fuzz" bash tests/unit/fuzz.sh

install: all
	@scripts/install --prefix "$(PREFIX)" --destdir "$(DESTDIR)"

clean:
	rm -rf build/default build/asan build/tsan build/kernel

# build/vm (the test VM's kernel and initramfs) survives `make clean`; this drops it too.
distclean:
	rm -rf build
