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
#include <sys/stat.h>
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

struct seg {
	uint64_t paddr, filesz, memsz, offset;
};

struct img {
	bool is64;
	uint32_t desc_size;     /* 4 or 8, 0 = no note */
	uint32_t note_type;
	uint64_t paddr, memsz;
	uint64_t entry;
	uint16_t machine;
	long truncate;          /* >0: cut the file there */
	uint64_t phoff_add;     /* pushes the program headers out */
	uint64_t filesz;        /* of the first segment, 0 = CODE_LEN */
	uint32_t namesz;        /* of the note, 0 = 4 */
	uint64_t note_filesz;   /* of the note segment, 0 = what it holds */
	uint16_t phentsize;     /* 0 = the class's */
	bool phentsize_zero;    /* e_phentsize 0 instead */
	uint16_t phnum;         /* 0 = 2, or 3 with a second segment */
	struct seg load2;       /* a second PT_LOAD when memsz or filesz */
	bool load2_is_note;     /* ...or a second PT_NOTE */
};

static void put_note(uint8_t *p, const struct img *m)
{
	uint32_t hdr[3] = { m->namesz ? m->namesz : 4, m->desc_size, m->note_type };

	memcpy(p, hdr, 12);
	memcpy(p + 12, "Xen", 4);
	memcpy(p + 16, &m->entry, m->desc_size < 8 ? m->desc_size : 8);
}

/* Layout: header, program headers at 64 (load, note, load2), note at 256,
 * code at 512. */
static void write_image(const struct img *m)
{
	uint8_t f[1024] = { 0 };
	uint64_t phoff = 64 + m->phoff_add;
	bool two = m->load2.memsz || m->load2.filesz;
	uint16_t phnum = m->phnum ? m->phnum : two ? 3 : 2;
	struct seg ph[3] = {
		{ m->paddr, m->filesz ? m->filesz : CODE_LEN, m->memsz, 512 },
		{ 0, m->note_filesz ? m->note_filesz : 16 + m->desc_size, 0, 256 },
		m->load2,
	};
	uint32_t type[3] = { PT_LOAD, PT_NOTE, m->load2_is_note ? PT_NOTE : PT_LOAD };
	FILE *out;

	memcpy(f, ELFMAG, SELFMAG);
	f[EI_CLASS] = m->is64 ? ELFCLASS64 : ELFCLASS32;
	f[EI_DATA] = ELFDATA2LSB;
	f[EI_VERSION] = EV_CURRENT;
	if (m->is64) {
		Elf64_Ehdr *e = (void *)f;

		e->e_type = ET_EXEC, e->e_machine = m->machine;
		e->e_phoff = phoff, e->e_phnum = phnum;
		e->e_phentsize = m->phentsize ? m->phentsize : sizeof(Elf64_Phdr);
		if (m->phentsize_zero)
			e->e_phentsize = 0;
		for (unsigned int i = 0; i < 3; i++) {
			Elf64_Phdr p = { .p_type = type[i], .p_offset = ph[i].offset,
					 .p_paddr = ph[i].paddr, .p_filesz = ph[i].filesz,
					 .p_memsz = ph[i].memsz };

			if (phoff + (i + 1) * sizeof(p) <= sizeof(f))
				memcpy(f + phoff + i * sizeof(p), &p, sizeof(p));
		}
	} else {
		Elf32_Ehdr *e = (void *)f;

		e->e_type = ET_EXEC, e->e_machine = m->machine;
		e->e_phoff = (uint32_t)phoff, e->e_phnum = phnum;
		e->e_phentsize = m->phentsize ? m->phentsize : sizeof(Elf32_Phdr);
		if (m->phentsize_zero)
			e->e_phentsize = 0;
		for (unsigned int i = 0; i < 3; i++) {
			Elf32_Phdr p = { .p_type = type[i], .p_offset = (uint32_t)ph[i].offset,
					 .p_paddr = (uint32_t)ph[i].paddr,
					 .p_filesz = (uint32_t)ph[i].filesz,
					 .p_memsz = (uint32_t)ph[i].memsz };

			if (phoff + (i + 1) * sizeof(p) <= sizeof(f))
				memcpy(f + phoff + i * sizeof(p), &p, sizeof(p));
		}
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

/* Refused with err and a line on stderr containing `says`. */
static void refused_saying(struct img m, int err, const char *says)
{
	char log[] = "/tmp/hv-pvh-log-XXXXXX", buf[1024];
	int fd = mkstemp(log), saved = dup(2);
	uint64_t entry = 0;
	uint32_t magic;
	ssize_t n;

	cr_assert_geq(fd, 0);
	write_image(&m);
	dup2(fd, 2);
	cr_assert_eq(hv_pvh_load(&vm, path, NULL, &entry), err, "%s", says);
	dup2(saved, 2);
	close(saved);
	memcpy(&magic, vm.mem + HV_START_INFO_GPA, 4);
	cr_assert_eq(magic, 0, "no start info for a refused image");
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(log);
	buf[n > 0 ? n : 0] = 0;
	cr_assert(strstr(buf, says), "wanted '%s', got '%s'", says, buf);
	cr_assert_eq(strchr(buf, '\n'), buf + strlen(buf) - 1, "one line: %s", buf);
}

static void refused(struct img m, int err)
{
	refused_saying(m, err, "gpup run: ");
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

/* What a hostile image tries: each a clear one-line refusal. */
Test(hv_pvh, hostile_images)
{
	struct img m;

	m = good(), m.filesz = 8192 + 4096;
	refused_saying(m, -ENOEXEC, "a segment lies outside the file");  /* filesz > memsz */
	m = good(), m.filesz = 1024;
	refused_saying(m, -ENOEXEC, "a segment lies outside the file");
	m = good(), m.memsz = ~0ull - 4096;
	refused_saying(m, -EFBIG, "does not fit in 4194304 bytes");       /* wraps */
	m = good(), m.paddr = RAM - 4096;
	refused_saying(m, -EFBIG, "use a larger --mem");
	m = good(), m.is64 = false, m.desc_size = 4, m.machine = EM_386;
	m.paddr = 0xfffff000u, m.memsz = 0x2000;
	refused_saying(m, -EFBIG, "segment at 0xfffff000");               /* 32-bit wrap */
	m = good(), m.paddr = HV_START_INFO_GPA + HV_START_INFO_SIZE - 1;
	refused_saying(m, -ENOEXEC, "overlaps the boot information");
	m = good(), m.load2 = (struct seg){ LOAD_AT + 4096, 16, 16, 512 };
	refused_saying(m, -ENOEXEC, "segment at 0x101000 overlaps or comes before "
				    "the one ending at 0x102000");
	m = good(), m.load2 = (struct seg){ LOAD_AT - 4096, 16, 16, 512 };
	refused_saying(m, -ENOEXEC, "overlaps or comes before");          /* out of order */
	m = good(), m.namesz = 0xfffffff0u;
	refused_saying(m, -ENOEXEC, "a note runs past its segment or the file");
	m = good(), m.note_filesz = 4096;
	refused_saying(m, -ENOEXEC, "a note runs past its segment or the file");
	m = good(), m.desc_size = 2, m.note_filesz = 20;
	refused_saying(m, -ENOEXEC, "the PVH entry note holds 2 bytes, not 4 or 8");
	m = good(), m.entry = LOAD_AT + 8192;
	refused_saying(m, -ENOEXEC, "PVH entry 0x102000 is outside the image's loaded segments");
	m = good(), m.entry = 0x2000;
	refused_saying(m, -ENOEXEC, "outside the image's loaded segments"); /* RAM, not image */
	m = good(), m.phentsize = 40;
	refused_saying(m, -ENOEXEC, "program header entries of 40 bytes");
	m = good(), m.load2 = (struct seg){ 0, 16, 0, 4096 }, m.load2_is_note = true;
	refused_saying(m, -ENOEXEC, "a note runs past its segment or the file"); /* after PVH's */
	m = good(), m.phentsize_zero = true;
	refused_saying(m, -ENOEXEC, "program header entries of 0 bytes");
	m = good(), m.phentsize_zero = true, m.is64 = false, m.desc_size = 4, m.machine = EM_386;
	refused_saying(m, -ENOEXEC, "program header entries of 0 bytes");
	m = good(), m.phnum = 0xffff;
	refused_saying(m, -ENOEXEC, "program headers lie outside the file");
	m = good(), m.phnum = 1;
	refused_saying(m, -ENOEXEC, "no PVH entry note");                 /* note not listed */
	m = good(), m.truncate = 60;
	refused_saying(m, -ENOEXEC, "not a little-endian 32- or 64-bit ELF file"); /* 64-bit, cut */
}

/* Segments that touch but do not overlap, and an empty one anywhere in
 * RAM, load; the second lands exactly where it says. */
Test(hv_pvh, adjacent_and_empty_segments_load)
{
	struct img m = good();
	uint64_t entry = 0;

	m.load2 = (struct seg){ LOAD_AT + 8192, 16, 4096, 512 };
	write_image(&m);
	cr_assert_eq(hv_pvh_load(&vm, path, NULL, &entry), 0);
	cr_assert_eq(vm.mem[LOAD_AT + 8192 + 15], 0xa0 + 15);
	cr_assert_eq(vm.mem[LOAD_AT + 8192 + 16], 0);
	m.load2 = (struct seg){ RAM, 0, 0, 0 };
	write_image(&m);
	cr_assert_eq(hv_pvh_load(&vm, path, NULL, &entry), 0);
}

Test(hv_pvh, missing_file)
{
	uint64_t entry;

	cr_assert_eq(hv_pvh_load(&vm, "/nonexistent/image.elf", NULL, &entry), -ENOENT);
}

/* A FIFO (or any file that is not regular) is refused at once, not waited
 * on for a writer that never comes. */
Test(hv_pvh, a_fifo_is_refused_without_waiting)
{
	char fifo[sizeof(path) + 8];
	uint64_t entry;

	snprintf(fifo, sizeof(fifo), "%s.fifo", path);
	unlink(fifo);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(hv_pvh_load(&vm, fifo, NULL, &entry), -ENOEXEC);
	cr_assert_eq(hv_pvh_load(&vm, "/dev/zero", NULL, &entry), -ENOEXEC);
	unlink(fifo);
}
