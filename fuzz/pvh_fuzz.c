// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the VMM's PVH loader (hv/pvh.c) with hostile
 * kernel images.  The input is the image itself, handed to
 * hv_pvh_load_image with a plain 2 MiB buffer standing in for guest RAM
 * (the loader touches nothing else of the VM).
 *
 * Checked after each input, by a parser of the harness's own:
 * - the result is 0, -ENOEXEC or -EFBIG, and a refusal leaves the boot
 *   information block (0x6000, 8 KiB) all zeros;
 * - an image that loads is a valid one: every PT_LOAD lies inside the file
 *   and inside RAM with filesz <= memsz, clear of the boot information,
 *   in ascending order without overlap; its bytes are in RAM exactly at
 *   its address; the entry point is inside a loaded segment; and every
 *   byte of RAM outside the segments' file bytes and the boot information
 *   is still zero;
 * - the boot information is the PVH start info (magic, version 1, the
 *   memory map) with the command line.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz/fuzz_util.h"
#include "hv/hv_int.h"

#define RAM (2u << 20)
#define CMDLINE "fuzz=1"

static uint8_t *ram;              /* anonymous: MADV_DONTNEED zeroes it */
static bool written[RAM];
static const uint8_t zero[4096];

struct seg {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz;
};

/* Program header i as the harness reads it; false past the file. */
static bool phdr(const uint8_t *d, size_t n, bool is64, unsigned int i, struct seg *s)
{
	uint64_t off, ent = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);

	if (is64) {
		Elf64_Ehdr e;

		memcpy(&e, d, sizeof(e));
		off = e.e_phoff;
	} else {
		Elf32_Ehdr e;

		memcpy(&e, d, sizeof(e));
		off = e.e_phoff;
	}
	if (off > n || (i + 1) * ent > n - off)
		return false;
	if (is64) {
		Elf64_Phdr p;

		memcpy(&p, d + off + i * ent, sizeof(p));
		*s = (struct seg){ p.p_type, p.p_offset, p.p_paddr, p.p_filesz, p.p_memsz };
	} else {
		Elf32_Phdr p;

		memcpy(&p, d + off + i * ent, sizeof(p));
		*s = (struct seg){ p.p_type, p.p_offset, p.p_paddr, p.p_filesz, p.p_memsz };
	}
	return true;
}

static void check_loaded(const uint8_t *d, size_t n, uint64_t entry)
{
	bool is64 = d[EI_CLASS] == ELFCLASS64, in_image = false;
	uint16_t phnum;
	uint64_t floor = 0, si = HV_START_INFO_GPA, si_end = si + HV_START_INFO_SIZE;
	uint32_t w[2];
	struct seg s;

	memcpy(&phnum, d + (is64 ? offsetof(Elf64_Ehdr, e_phnum) : offsetof(Elf32_Ehdr, e_phnum)), 2);
	memset(written, 0, sizeof(written));
	for (unsigned int i = 0; i < phnum; i++) {
		fz_check(phdr(d, n, is64, i, &s), "loaded with header %u past the file", i);
		if (s.type != PT_LOAD)
			continue;
		fz_check(s.offset <= n && s.filesz <= n - s.offset, "segment %u past the file", i);
		fz_check(s.filesz <= s.memsz, "segment %u: filesz > memsz", i);
		fz_check(s.paddr <= RAM && s.memsz <= RAM - s.paddr, "segment %u outside RAM", i);
		if (!s.memsz)
			continue;
		fz_check(s.paddr + s.memsz <= si || s.paddr >= si_end, "segment %u on boot info", i);
		fz_check(s.paddr >= floor, "segment %u overlaps or is out of order", i);
		floor = s.paddr + s.memsz;
		fz_check(!memcmp(ram + s.paddr, d + s.offset, s.filesz), "segment %u not loaded", i);
		memset(written + s.paddr, 1, s.filesz);
		in_image |= entry >= s.paddr && entry - s.paddr < s.memsz;
	}
	fz_check(in_image, "entry 0x%llx outside the loaded segments", (unsigned long long)entry);
	memset(written + si, 1, HV_START_INFO_SIZE);
	for (size_t pg = 0; pg < RAM; pg += sizeof(zero)) {
		if (!memcmp(ram + pg, zero, sizeof(zero)))
			continue;
		for (size_t i = pg; i < pg + sizeof(zero); i++)
			fz_check(written[i] || !ram[i], "byte 0x%zx written outside the image", i);
	}
	memcpy(w, ram + si, 8);
	fz_check(w[0] == 0x336ec578u && w[1] == 1, "no start info");
	fz_check(!strcmp((const char *)ram + si + 0x100, CMDLINE), "command line");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!fz_verbose())
		hv_log_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fz_check(ram != MAP_FAILED, "no memory for guest RAM");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hv_vm vm = { .mem = ram, .mem_size = RAM };
	uint64_t entry = 0;
	uint8_t *copy = malloc(size ? size : 1);
	int rc;

	/* An exact-size copy, so ASan sees any read past the image. */
	memcpy(copy, data, size);
	rc = hv_pvh_load_image(&vm, "fuzz.elf", copy, size, CMDLINE, &entry);
	fz_check(rc == 0 || rc == -ENOEXEC || rc == -EFBIG, "unexpected result %d", rc);
	if (rc == 0) {
		check_loaded(copy, size, entry);
	} else {
		for (uint64_t i = 0; i < HV_START_INFO_SIZE; i++)
			fz_check(!ram[HV_START_INFO_GPA + i], "refused (%d) but boot info written", rc);
	}
	free(copy);
	/* Back to fresh zero pages, at the cost of the pages touched only. */
	fz_check(madvise(ram, RAM, MADV_DONTNEED) == 0, "madvise");
	return 0;
}
