# gpup: one binary (build/gpup), a library of the modules for the tests,
# Criterion suites, freestanding sample guests.  GNU make, non-recursive:
# each module may add rules in its own <module>/module.mk.
#
#   make              build build/gpup (and the guests)
#   make demo         start a daemon on sim GPUs and use partitions
#   make test         run every suite, plain and under ASan+UBSan
#   make test-plain   the suites once, no sanitizers
#   make test-asan    the suites under AddressSanitizer + UBSan
#   make bench        the perf/ programs; report in docs/BENCHMARKS.md
#   make check-layers  includes against the allowed layers (CI runs it)
#   make man          man pages from the --help texts (help2man), in BUILD/man
#   make install      binary, guests, scenarios, man pages, systemd unit,
#                     bash completion, example config; PREFIX (/usr/local),
#                     DESTDIR and the *DIR variables of scripts/install.sh
#   make linux-guest  the Linux guest: Debian's kernel packages fetched into
#                     BUILD/linux, the gpup_vgpu module built against them,
#                     the tools, an initramfs (samples/linux/module.mk)
#   make fuzz         libFuzzer harnesses (clang), FUZZ_SECONDS each; rules
#                     in fuzz/module.mk, see docs/FUZZING.md
#
# BUILD=DIR puts all output in DIR (default build); SAN=1 builds the
# sanitized variant into $(BUILD)/asan.  `dpkg-buildpackage -b -us -uc` builds
# a Debian package from debian/ (docs/SERVICE.md).

BUILD ?= build
SAN ?= 0
CC := gcc

ifeq ($(SAN),1)
O := $(BUILD)/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
O := $(BUILD)
SANFLAGS :=
endif

CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
	-I. -I/usr/include/libdrm -MMD -MP $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := -pthread $(SANFLAGS)
LIBS := -ljson-c -lxxhash -lpciaccess -ldrm -lzstd -lseccomp -lnvme -lm

# gpup is a folder of rooms, one subfolder each.
MODULES := vfu iommu scheduler migrate hv gpup
LIB_SRCS := $(filter-out gpup/cli/main.c,$(wildcard $(addsuffix /*.c,$(MODULES)) gpup/*/*.c))
LIB_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(LIB_SRCS))
TEST_SRCS := $(wildcard tests/*_test.c)
TEST_BINS := $(patsubst tests/%.c,$(O)/tests/%,$(TEST_SRCS))
PERF_SRCS := $(wildcard perf/*_perf.c)
PERF_BINS := $(patsubst perf/%.c,$(O)/perf/%,$(PERF_SRCS))

DEPS_STAMP := $(BUILD)/.deps-ok

# Module fragments add freestanding guest images to GUESTS and may add
# rules of their own; they see every variable above.  Their rules come
# first, so the default goal is named here.
.DEFAULT_GOAL := all
GUESTS :=
-include $(wildcard */module.mk)

.SECONDARY:
.PHONY: all deps guests demo test test-plain test-asan bench fuzz interop interop-bench cluster-test \
	check-layers clean \
	man install
all: $(O)/gpup guests

guests: $(GUESTS)

# DEPS=0: the packages are someone else's business (a Debian package
# build gets them from Build-Depends).
DEPS ?= 1
deps: $(DEPS_STAMP)
ifeq ($(DEPS),0)
$(DEPS_STAMP):
	@mkdir -p $(@D) && touch $@
else
$(DEPS_STAMP): scripts/deps.sh
	@sh scripts/deps.sh
	@mkdir -p $(@D) && touch $@
endif

$(O)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# Every program links all module objects: subcommands and devices register
# themselves from constructors, so none may be dropped for being
# unreferenced (and an archive would also clash on equal basenames).
$(O)/gpup: $(O)/obj/gpup/cli/main.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# tests/testlib.c: helpers shared by the suites; tests/daemonlib.c: the
# daemon a suite or a perf program runs (no Criterion in it).
$(O)/tests/%: $(O)/obj/tests/%.o $(O)/obj/tests/testlib.o $(O)/obj/tests/daemonlib.o \
		$(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcriterion

# perf/perflib.c: statistics shared by the benchmarks, linked into each.
$(O)/perf/%: $(O)/obj/perf/%.o $(O)/obj/perf/perflib.o $(O)/obj/tests/daemonlib.o $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Each perf/<name>_perf.c is a program printing one Markdown section;
# scripts/bench.sh runs them all and writes docs/BENCHMARKS.md.
bench: $(O)/gpup guests $(PERF_BINS)
	@env $(TEST_ENV) sh scripts/bench.sh $(PERF_BINS)

# Upstream QEMU (Debian sid, in a chroot under build/interop) as a client:
# not part of `make test`, it downloads a suite (docs/INTEROP.md).
interop: $(O)/gpup guests linux-guest
	@env $(TEST_ENV) GPUP_LINUX_DIR=$(abspath $(LINUX_DIR)) sh scripts/interop.sh
# The infer guest under QEMU (with and without the watch word) and gpup run.
interop-bench: $(O)/gpup guests
	@env $(TEST_ENV) sh scripts/interop.sh bench

# The OCF agent under a one-node Pacemaker + corosync in namespaces of
# its own (docs/SERVICE.md, "In a cluster").
cluster-test: $(O)/gpup guests
	@env $(TEST_ENV) sh scripts/cluster-test.sh

# Integration suites find the binary and the guests through these.
TEST_ENV = GPUP_BIN=$(abspath $(O)/gpup) GPUP_GUESTS=$(abspath $(BUILD)/guests) \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1

test-plain: $(O)/gpup guests $(TEST_BINS)
	@sh scripts/run-tests.sh "$(TEST_ENV)" $(TEST_BINS)

test-asan:
	@$(MAKE) --no-print-directory SAN=1 test-plain

# One after the other even under -j: the suites time real VMs and engines.
test:
	@$(MAKE) --no-print-directory test-plain
	@$(MAKE) --no-print-directory test-asan

# The README's first command: a daemon with sim GPUs, partitions created
# and used (and, with the VMM, guests booted on them).
demo: $(O)/gpup guests
	@GPUP_BIN=$(abspath $(O)/gpup) GPUP_GUESTS=$(abspath $(BUILD)/guests) sh scripts/demo.sh

# The libFuzzer harnesses (rules in fuzz/module.mk), each run FUZZ_SECONDS.
fuzz: $(FUZZ_BINS)
	@sh fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_NAMES)

# Every include against the layers in docs/ARCHITECTURE.md (the edges are
# written once, in scripts/check-layers.sh), then proof that the check
# catches wrong includes on a copy of the tree.
check-layers:
	@sh scripts/check-layers.sh
	@sh scripts/check-layers-test.sh

# One source of truth: each page is its command's --help (scripts/man.sh).
man: $(BUILD)/man/gpup.1
$(BUILD)/man/gpup.1: $(O)/gpup scripts/man.sh
	@sh scripts/man.sh $(O)/gpup $(BUILD)/man

PREFIX ?= /usr/local
INSTALL_VARS := DESTDIR PREFIX BINDIR LIBDIR DATADIR MANDIR UNITDIR COMPLETIONDIR SYSCONFDIR
install: $(O)/gpup guests man
	@env $(foreach v,$(INSTALL_VARS),$(if $($(v)),$(v)='$($(v))')) \
		sh scripts/install.sh $(O)/gpup $(BUILD)/guests $(BUILD)/man

# Never into a chroot whose /dev or /proc is still bound (an interrupted
# make interop unmounts on exit, but check).
clean:
	@! grep -q " $(abspath $(BUILD))/interop/" /proc/mounts || \
		{ echo "make clean: something is mounted under $(BUILD)/interop; unmount it first" >&2; exit 1; }
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name interop -prune -o -name '*.d' -type f -print 2>/dev/null)
