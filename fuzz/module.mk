# Coverage-guided fuzzing of the daemon's untrusted-input boundaries
# (docs/FUZZING.md).  Each fuzz/<name>_fuzz.c is a libFuzzer harness built
# with clang, AddressSanitizer and UBSan against the module sources, into
# $(BUILD)/fuzz/<name>_fuzz; `make fuzz` builds them all and runs each for
# FUZZ_SECONDS on its seed corpus in fuzz/corpus/<name>/ through fuzz/run.sh
# (new inputs go to $(BUILD)/fuzz/corpus/<name>/, findings to $(BUILD)/fuzz/).

FUZZ_CC := clang
FUZZ_SECONDS ?= 30
FUZZ_DIR := $(BUILD)/fuzz
# gpup/gpu/kernels.c asks GCC for fp-contract=off by pragma, clang gets the
# flag; hv/vcpu.c's KVM MSR buffer is a GNU extension clang warns about.
FUZZ_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
	-I. -I/usr/include/libdrm -MMD -MP -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all \
	-ffp-contract=off -Wno-unknown-pragmas -Wno-gnu-variable-sized-type-not-at-end
FUZZ_SRCS := $(wildcard fuzz/*_fuzz.c)
FUZZ_NAMES := $(patsubst fuzz/%_fuzz.c,%,$(FUZZ_SRCS))
FUZZ_BINS := $(patsubst %,$(FUZZ_DIR)/%_fuzz,$(FUZZ_NAMES))
# All module objects but the benchmark's (gpup bench: its room and its
# command), which no input reaches.
FUZZ_LIB_OBJS := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(filter-out gpup/bench/% \
	gpup/cli/cmd_bench.c,$(LIB_SRCS)))
FUZZ_STAMP := $(FUZZ_DIR)/.fuzz-deps-ok

# Only pattern rules here, so that no target of this file becomes the
# default goal; `make fuzz` itself is in the Makefile.
%/.fuzz-deps-ok: scripts/deps.sh
	@sh scripts/deps.sh fuzz
	@mkdir -p $(@D) && touch $@

# Everything gets coverage counters; libFuzzer's main comes in at the link.
$(FUZZ_DIR)/obj/%.o: %.c | $(DEPS_STAMP) $(FUZZ_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/%_fuzz: $(FUZZ_DIR)/obj/fuzz/%_fuzz.o $(FUZZ_DIR)/obj/fuzz/fuzz_util.o \
		$(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)
