// SPDX-License-Identifier: MIT
/*
 * The PVH loader without KVM: ELF images built here byte by byte (64- and
 * 32-bit, 4- and 8-byte entry notes) are loaded into a plain buffer
 * standing in for guest RAM; the segments, the untouched bss, the
 * hvm_start_info block, its memory map and command line are checked
 * exactly, and every malformed image is refused with -ENOEXEC or -EFBIG
 * and leaves the start info unwritten.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/hv_int.h"

#define RAM (4u << 20)
#define LOAD_AT 0x100000u
#define CODE_LEN 64u

static struct hv_vm vm;
static char path[64];

static void setup(void)
{
	memset(&vm, 0, sizeof(vm));
	vm.mem_size = RAM;
	vm.mem = calloc(1, RAM);
	cr_assert_not_null(vm.mem);
	strcpy(path, "/tmp/hv-pvh-XXXXXX");
	cr_assert_geq(mkstemp(path), 0);
}

static void teardown(void)
{
	free(vm.mem);
	unlink(path);
}

TestSuite(hv_pvh, .init = setup, .fini = teardown);

struct img {
	bool is64;
	uint32_t desc_size;     /* 4 or 8, 0 = no note */
	uint32_t note_type;
	uint64_t paddr, memsz;
	uint64_t entry;
	uint16_t machine;
	long truncate;          /* >0: cut the file there */
	uint64_t phoff_add;     /* pushes the program headers out */
};

static void put_note(uint8_t *p, const struct img *m)
{
	uint32_t hdr[3] = { 4, m->desc_size, m->note_type };

	memcpy(p, hdr, 12);
	memcpy(p + 12, "Xen", 4);
	memcpy(p + 16, &m->entry, m->desc_size);
}

/* Layout: header, 2 program headers at 64, note at 256, code at 512. */
static void write_image(const struct img *m)
{
	uint8_t f[1024] = { 0 };
	uint64_t phoff = 64 + m->phoff_add;
	FILE *out;

	memcpy(f, ELFMAG, SELFMAG);
	f[EI_CLASS] = m->is64 ? ELFCLASS64 : ELFCLASS32;
	f[EI_DATA] = ELFDATA2LSB;
	f[EI_VERSION] = EV_CURRENT;
	if (m->is64) {
		Elf64_Ehdr *e = (void *)f;
		Elf64_Phdr ph[2] = {
			{ .p_type = PT_LOAD, .p_offset = 512, .p_paddr = m->paddr,
			  .p_filesz = CODE_LEN, .p_memsz = m->memsz },
			{ .p_type = PT_NOTE, .p_offset = 256, .p_filesz = 16 + m->desc_size },
		};

		e->e_type = ET_EXEC, e->e_machine = m->machine;
		e->e_phoff = phoff, e->e_phnum = 2, e->e_phentsize = sizeof(ph[0]);
		if (phoff + sizeof(ph) <= sizeof(f))
			memcpy(f + phoff, ph, sizeof(ph));
	} else {
		Elf32_Ehdr *e = (void *)f;
		Elf32_Phdr ph[2] = {
			{ .p_type = PT_LOAD, .p_offset = 512, .p_paddr = (uint32_t)m->paddr,
			  .p_filesz = CODE_LEN, .p_memsz = (uint32_t)m->memsz },
			{ .p_type = PT_NOTE, .p_offset = 256, .p_filesz = 16 + m->desc_size },
		};

		e->e_type = ET_EXEC, e->e_machine = m->machine;
		e->e_phoff = (uint32_t)phoff, e->e_phnum = 2, e->e_phentsize = sizeof(ph[0]);
		memcpy(f + phoff, ph, sizeof(ph));
	}
	if (m->desc_size)
		put_note(f + 256, m);
	for (unsigned int i = 0; i < CODE_LEN; i++)
		f[512 + i] = (uint8_t)(0xa0 + i);
	out = fopen(path, "wb");
	cr_assert_not_null(out);
	fwrite(f, 1, m->truncate > 0 ? (size_t)m->truncate : sizeof(f), out);
	fclose(out);
}

static struct img good(void)
{
	return (struct img){ .is64 = true, .desc_size = 8, .note_type = 18,
			     .paddr = LOAD_AT, .memsz = 8192, .entry = LOAD_AT + 16,
			     .machine = EM_X86_64 };
}

static void check_loaded(const char *cmdline)
{
	const uint8_t *si = vm.mem + HV_START_INFO_GPA;
	uint32_t w[8];
	uint64_t q[9];

	for (unsigned int i = 0; i < CODE_LEN; i++)
		cr_assert_eq(vm.mem[LOAD_AT + i], 0xa0 + i);
	cr_assert_eq(vm.mem[LOAD_AT + CODE_LEN], 0, "bss left as the zero page it is");
	memcpy(w, si, 16);
	cr_assert_eq(w[0], 0x336ec578u, "magic");
	cr_assert_eq(w[1], 1u, "version 1: has a memory map");
	memcpy(q, si + 16, 40);
	cr_assert_eq(q[0], 0, "no modules");
	cr_assert_eq(q[3], HV_START_INFO_GPA + 0x40, "memory map address");
	memcpy(w, si + 48, 4);
	cr_assert_eq(w[0], 3, "three memory map entries");
	memcpy(q, si + 0x40, 3 * 24);
	cr_assert_eq(q[0], 0);
	cr_assert_eq(q[1], 0xa0000);
	cr_assert_eq(q[2], 1, "RAM");
	cr_assert_eq(q[3], 0xa0000);
	cr_assert_eq(q[4], 0x60000);
	cr_assert_eq(q[5], 2, "reserved");
	cr_assert_eq(q[6], 0x100000, "RAM from 1 MiB");
	cr_assert_eq(q[7], RAM - 0x100000);
	cr_assert_eq(q[8], 1);
	if (!cmdline) {
		memcpy(q, si + 24, 8);
		cr_assert_eq(q[0], 0, "no command line");
		return;
	}
	memcpy(q, si + 24, 8);
	cr_assert_eq(q[0], HV_START_INFO_GPA + 0x100);
	cr_assert_str_eq((const char *)vm.mem + q[0], cmdline);
}

Test(hv_pvh, elf64_with_8_byte_note)
{
	struct img m = good();
	uint64_t entry = 0;

	write_image(&m);
	cr_assert_eq(hv_pvh_load(&vm, path, "n=4 sample", &entry), 0);
	cr_assert_eq(entry, LOAD_AT + 16);
	check_loaded("n=4 sample");
}

Test(hv_pvh, elf32_with_4_byte_note)
{
	struct img m = good();
	uint64_t entry = 0;

	m.is64 = false, m.desc_size = 4, m.machine = EM_386;
	write_image(&m);
	cr_assert_eq(hv_pvh_load(&vm, path, NULL, &entry), 0);
	cr_assert_eq(entry, LOAD_AT + 16);
	check_loaded(NULL);
}

static void refused(struct img m, int err)
{
	uint64_t entry = 0;
	uint32_t magic;

	write_image(&m);
	cr_assert_eq(hv_pvh_load(&vm, path, NULL, &entry), err);
	memcpy(&magic, vm.mem + HV_START_INFO_GPA, 4);
	cr_assert_eq(magic, 0, "no start info for a refused image");
}

Test(hv_pvh, refusals)
{
	struct img m;

	m = good(), m.desc_size = 0;
	refused(m, -ENOEXEC);          /* no note */
	m = good(), m.note_type = 17;
	refused(m, -ENOEXEC);          /* some other Xen note */
	m = good(), m.machine = EM_AARCH64;
	refused(m, -ENOEXEC);
	m = good(), m.memsz = RAM;
	refused(m, -EFBIG);            /* runs past the end of RAM */
	m = good(), m.paddr = ~0ull - 16;
	refused(m, -EFBIG);            /* wraps around */
	m = good(), m.paddr = HV_START_INFO_GPA - 4096;
	refused(m, -ENOEXEC);          /* over the boot information */
	m = good(), m.entry = RAM + 4096;
	refused(m, -ENOEXEC);          /* entry outside RAM */
	m = good(), m.truncate = 540;
	refused(m, -ENOEXEC);          /* segment cut short */
	m = good(), m.phoff_add = 4000;
	refused(m, -ENOEXEC);          /* program headers past the end */
	m = good(), m.truncate = 20;
	refused(m, -ENOEXEC);          /* not even a header */
}

Test(hv_pvh, missing_file)
{
	uint64_t entry;

	cr_assert_eq(hv_pvh_load(&vm, "/nonexistent/image.elf", NULL, &entry), -ENOENT);
}
