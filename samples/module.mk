# Sample guests: freestanding x86-64 ELF images with a PVH entry note, built
# with the host gcc (no libc) into $(BUILD)/guests/NAME.elf.  They link the
# runtime in samples/rt and boot under `gpup run` and QEMU -kernel alike.

GUEST_DIR := $(BUILD)/guests
GUEST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding \
	-fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables \
	-fno-tree-loop-distribute-patterns -fcf-protection=none -mno-red-zone \
	-mgeneral-regs-only -mcmodel=small -I. -Isamples/rt -MMD -MP
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,samples/rt/guest.ld \
	-Wl,--no-warn-rwx-segments -Wl,--build-id=none -Wl,-z,noexecstack
GUEST_RT := boot.S rt.c printf.c softfloat.c intr.c pci_conf.c vgpu_drv.c
GUEST_RT_OBJS := $(patsubst %,$(GUEST_DIR)/obj/rt/%.o,$(GUEST_RT))
GUEST_NAMES := hello infer vdi hostile latency tenant dirty
GUESTS += $(patsubst %,$(GUEST_DIR)/%.elf,$(GUEST_NAMES))

$(GUEST_DIR)/obj/%.c.o: samples/%.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_DIR)/obj/%.S.o: samples/%.S | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_DIR)/%.elf: $(GUEST_DIR)/obj/%.c.o $(GUEST_RT_OBJS) samples/rt/guest.ld
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $< $(GUEST_RT_OBJS)

# The Linux guest: its own fragment.
include samples/linux/module.mk
