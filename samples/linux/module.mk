# The Linux guest (make linux-guest): Debian's stock kernel with the gpup
# driver and userspace tools in an initramfs.  Fetches the guest kernel's
# packages into $(LINUX_DIR) (scripts/linux-fetch.sh), builds the module
# against their headers (not the host's), the tools as static programs,
# and the initramfs from busybox-static.  docs/INTEROP.md says how it runs.

LINUX_DIR := $(BUILD)/linux
LINUX_KMOD_SRCS := $(wildcard samples/linux/kmod/*.c samples/linux/kmod/*.h) \
	samples/linux/kmod/Kbuild samples/linux/kmod/compat/stdint.h
LINUX_TOOLS := gpup-info gpup-infer gpup-vdi gpup-hostile gpup-exit
LINUX_TOOL_BINS := $(patsubst %,$(LINUX_DIR)/bin/%,$(LINUX_TOOLS))
LINUX_CFLAGS := -std=gnu11 -O2 -Wall -Wextra -Werror -ffp-contract=off -I. \
	-Isamples/linux/tools -static

.PHONY: linux-guest
linux-guest: $(LINUX_DIR)/initramfs.cpio.gz

$(LINUX_DIR)/kver: scripts/linux-fetch.sh
	@sh scripts/linux-fetch.sh $(LINUX_DIR)

# Out of the source tree: kbuild writes its objects next to the sources.
$(LINUX_DIR)/kmod/gpup_vgpu.ko: $(LINUX_KMOD_SRCS) uapi/gpup_vgpu.h \
		uapi/gpup_vgpu_ioctl.h $(LINUX_DIR)/kver
	@rm -rf $(LINUX_DIR)/kmod && mkdir -p $(LINUX_DIR)/kmod
	cp -r samples/linux/kmod/. $(LINUX_DIR)/kmod/
	$(MAKE) -C $(LINUX_DIR)/root/usr/src/linux-headers-$$(cat $(LINUX_DIR)/kver) \
		M=$(abspath $(LINUX_DIR)/kmod) GPUP_SRC=$(abspath .) modules

$(LINUX_DIR)/bin/gpup-%: samples/linux/tools/%.c samples/linux/tools/libgpup.c \
		samples/linux/tools/gpup.h uapi/gpup_vgpu.h uapi/gpup_vgpu_ioctl.h
	@mkdir -p $(@D)
	$(CC) $(LINUX_CFLAGS) -o $@ $< samples/linux/tools/libgpup.c

$(LINUX_DIR)/bin/gpup-info: samples/linux/tools/gpup-info.c samples/linux/tools/libgpup.c \
		samples/linux/tools/gpup.h uapi/gpup_vgpu.h uapi/gpup_vgpu_ioctl.h
	@mkdir -p $(@D)
	$(CC) $(LINUX_CFLAGS) -o $@ $< samples/linux/tools/libgpup.c

$(LINUX_DIR)/bin/gpup-exit: samples/linux/tools/gpup-exit.c
	@mkdir -p $(@D)
	$(CC) $(LINUX_CFLAGS) -o $@ $<

# busybox's own cpio writes the archive: nothing more on the host.
$(LINUX_DIR)/initramfs.cpio.gz: $(LINUX_DIR)/kmod/gpup_vgpu.ko $(LINUX_TOOL_BINS) \
		samples/linux/init $(LINUX_DIR)/kver
	@rm -rf $(LINUX_DIR)/initramfs && mkdir -p $(LINUX_DIR)/initramfs/bin \
		$(LINUX_DIR)/initramfs/lib/modules $(LINUX_DIR)/initramfs/dev \
		$(LINUX_DIR)/initramfs/proc $(LINUX_DIR)/initramfs/sys $(LINUX_DIR)/initramfs/tmp
	cp $(LINUX_DIR)/busybox $(LINUX_TOOL_BINS) $(LINUX_DIR)/initramfs/bin/
	for a in $$($(LINUX_DIR)/busybox --list); do \
		[ -e $(LINUX_DIR)/initramfs/bin/$$a ] || ln -s busybox $(LINUX_DIR)/initramfs/bin/$$a; done
	cp $(LINUX_DIR)/kmod/gpup_vgpu.ko $(LINUX_DIR)/initramfs/lib/modules/
	cp samples/linux/init $(LINUX_DIR)/initramfs/init
	cd $(LINUX_DIR)/initramfs && find . | $(abspath $(LINUX_DIR)/busybox) cpio -o -H newc \
		2>/dev/null | gzip -1 >$(abspath $@).tmp
	mv $@.tmp $@
