// SPDX-License-Identifier: MIT
/*
 * PVH boot: load an ELF image's PT_LOAD segments at their physical
 * addresses, find the XEN_ELFNOTE_PHYS32_ENTRY note, and write the
 * hvm_start_info block (with a memory map and the command line) that the
 * PVH ABI hands the guest in ebx.  This is the direct-boot ABI QEMU's
 * -kernel and Firecracker also speak, so one image boots under all three.
 *
 * The image is mapped read-only and copied segment by segment; bss is not
 * cleared because a fresh memfd already reads as zeros, and touching it
 * would fault in pages the guest may never use.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv/hv_int.h"

#define HV_XEN_ELFNOTE_PHYS32_ENTRY 18
#define HV_PVH_MAGIC 0x336ec578u
#define HV_PVH_MEMMAP_RAM 1u
#define HV_PVH_MEMMAP_RESERVED 2u

/* The PVH start-of-day structures (version 1), laid out as the ABI says. */
struct hv_pvh_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hv_pvh_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

_Static_assert(sizeof(struct hv_pvh_start_info) == 56, "start_info");
_Static_assert(sizeof(struct hv_pvh_memmap_entry) == 24, "memmap entry");

#define HV_PVH_MEMMAP_OFF 0x40
#define HV_PVH_CMDLINE_OFF 0x100

/* One ELF program header, whatever the class. */
struct hv_phdr {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz;
};

struct hv_image {
	const char *path;
	const uint8_t *data;
	size_t size;
	bool is64;
	uint16_t phnum;
};

static bool hv_image_phdr(const struct hv_image *im, unsigned int i,
			  struct hv_phdr *ph)
{
	uint64_t phoff, entsize;

	if (im->is64) {
		const Elf64_Ehdr *eh = (const void *)im->data;

		phoff = eh->e_phoff;
		entsize = sizeof(Elf64_Phdr);
	} else {
		const Elf32_Ehdr *eh = (const void *)im->data;

		phoff = eh->e_phoff;
		entsize = sizeof(Elf32_Phdr);
	}
	if (phoff > im->size || (i + 1) * entsize > im->size - phoff)
		return false;
	if (im->is64) {
		Elf64_Phdr p;

		memcpy(&p, im->data + phoff + i * entsize, sizeof(p));
		*ph = (struct hv_phdr){ p.p_type, p.p_offset, p.p_paddr,
					p.p_filesz, p.p_memsz };
	} else {
		Elf32_Phdr p;

		memcpy(&p, im->data + phoff + i * entsize, sizeof(p));
		*ph = (struct hv_phdr){ p.p_type, p.p_offset, p.p_paddr,
					p.p_filesz, p.p_memsz };
	}
	return true;
}

static int hv_image_check_header(struct hv_image *im)
{
	const unsigned char *id = im->data;
	uint16_t machine, type, phentsize;

	if (im->size < sizeof(Elf32_Ehdr) || memcmp(id, ELFMAG, SELFMAG)) {
		hv_log("%s: not an ELF file", im->path);
		return -ENOEXEC;
	}
	im->is64 = id[EI_CLASS] == ELFCLASS64;
	if ((!im->is64 && id[EI_CLASS] != ELFCLASS32) || id[EI_DATA] != ELFDATA2LSB ||
	    (im->is64 && im->size < sizeof(Elf64_Ehdr))) {
		hv_log("%s: not a little-endian 32- or 64-bit ELF file", im->path);
		return -ENOEXEC;
	}
	if (im->is64) {
		const Elf64_Ehdr *eh = (const void *)im->data;

		machine = eh->e_machine, type = eh->e_type, im->phnum = eh->e_phnum;
		phentsize = eh->e_phentsize == sizeof(Elf64_Phdr) ? 0 : eh->e_phentsize;
	} else {
		const Elf32_Ehdr *eh = (const void *)im->data;

		machine = eh->e_machine, type = eh->e_type, im->phnum = eh->e_phnum;
		phentsize = eh->e_phentsize == sizeof(Elf32_Phdr) ? 0 : eh->e_phentsize;
	}
	if ((machine != EM_X86_64 && machine != EM_386) || type != ET_EXEC) {
		hv_log("%s: not an x86 executable ELF image", im->path);
		return -ENOEXEC;
	}
	if (im->phnum && phentsize) {
		hv_log("%s: program header entries of %u bytes, not this ELF class's",
		       im->path, phentsize);
		return -ENOEXEC;
	}
	return 0;
}

/* Walk one PT_NOTE segment for the PVH entry note: 1 found, 0 not
 * there, -ENOEXEC for a note that does not fit its segment. */
static int hv_find_note(const struct hv_image *im, const struct hv_phdr *ph,
			uint64_t *entry)
{
	uint64_t off = ph->offset, end = ph->offset + ph->filesz;

	if (ph->offset > im->size || ph->filesz > im->size - ph->offset)
		goto bad;
	while (off + 12 <= end) {
		uint32_t n[3];
		uint64_t name, desc;

		memcpy(n, im->data + off, sizeof(n));
		name = off + 12;
		desc = name + ((n[0] + 3ull) & ~3ull);
		off = desc + ((n[1] + 3ull) & ~3ull);
		if (off > end)
			goto bad;
		if (n[2] != HV_XEN_ELFNOTE_PHYS32_ENTRY || n[0] != 4 ||
		    memcmp(im->data + name, "Xen", 4))
			continue;
		if (n[1] == 4) {
			uint32_t e32;

			memcpy(&e32, im->data + desc, 4);
			*entry = e32;
		} else if (n[1] == 8) {
			memcpy(entry, im->data + desc, 8);
		} else {
			hv_log("%s: the PVH entry note holds %u bytes, not 4 or 8",
			       im->path, n[1]);
			return -ENOEXEC;
		}
		return 1;
	}
	return 0;
bad:
	hv_log("%s: a note runs past its segment or the file", im->path);
	return -ENOEXEC;
}

/* Load one PT_LOAD segment.  Segments come in ascending order of address
 * and never overlap (*floor is where the previous one ended), so no byte
 * is written twice and none lands on the boot information. */
static int hv_load_segment(struct hv_vm *vm, const struct hv_image *im,
			   const struct hv_phdr *ph, uint64_t *floor)
{
	uint64_t si_end = HV_START_INFO_GPA + HV_START_INFO_SIZE;

	if (ph->offset > im->size || ph->filesz > im->size - ph->offset ||
	    ph->filesz > ph->memsz) {
		hv_log("%s: a segment lies outside the file", im->path);
		return -ENOEXEC;
	}
	if (ph->paddr > vm->mem_size || ph->memsz > vm->mem_size - ph->paddr) {
		hv_log("%s: segment at 0x%llx (%llu bytes) does not fit in %llu "
		       "bytes of guest RAM; use a larger --mem", im->path,
		       (unsigned long long)ph->paddr, (unsigned long long)ph->memsz,
		       (unsigned long long)vm->mem_size);
		return -EFBIG;
	}
	if (ph->memsz && ph->paddr < si_end && HV_START_INFO_GPA < ph->paddr + ph->memsz) {
		hv_log("%s: segment at 0x%llx overlaps the boot information at "
		       "0x%llx", im->path, (unsigned long long)ph->paddr,
		       HV_START_INFO_GPA);
		return -ENOEXEC;
	}
	if (ph->memsz && ph->paddr < *floor) {
		hv_log("%s: segment at 0x%llx overlaps or comes before the one "
		       "ending at 0x%llx", im->path, (unsigned long long)ph->paddr,
		       (unsigned long long)*floor);
		return -ENOEXEC;
	}
	memcpy(vm->mem + ph->paddr, im->data + ph->offset, ph->filesz);
	if (ph->memsz)
		*floor = ph->paddr + ph->memsz;
	return 0;
}

/* Whether the entry point lies inside a loaded segment. */
static bool hv_entry_loaded(const struct hv_image *im, uint64_t entry)
{
	struct hv_phdr ph;

	for (unsigned int i = 0; i < im->phnum && hv_image_phdr(im, i, &ph); i++)
		if (ph.type == PT_LOAD && entry >= ph.paddr && entry - ph.paddr < ph.memsz)
			return true;
	return false;
}

static int hv_load_image(struct hv_vm *vm, struct hv_image *im, uint64_t *entry)
{
	struct hv_phdr ph;
	uint64_t floor = 0;
	unsigned int nload = 0;
	int rc, found = 0;

	rc = hv_image_check_header(im);
	for (unsigned int i = 0; rc == 0 && i < im->phnum; i++) {
		if (!hv_image_phdr(im, i, &ph)) {
			hv_log("%s: program headers lie outside the file", im->path);
			return -ENOEXEC;
		}
		if (ph.type == PT_NOTE && !found) {
			found = hv_find_note(im, &ph, entry);
			rc = found < 0 ? found : 0;
		}
		if (rc == 0 && ph.type == PT_LOAD) {
			rc = hv_load_segment(vm, im, &ph, &floor);
			nload++;
		}
	}
	if (rc)
		return rc;
	if (!found || !nload) {
		hv_log("%s: no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "
		       "not a PVH-bootable image", im->path);
		return -ENOEXEC;
	}
	if (!hv_entry_loaded(im, *entry)) {
		hv_log("%s: PVH entry 0x%llx is outside the image's loaded segments",
		       im->path, (unsigned long long)*entry);
		return -ENOEXEC;
	}
	return 0;
}

static void hv_write_start_info(struct hv_vm *vm, const char *cmdline)
{
	uint8_t *base = vm->mem + HV_START_INFO_GPA;
	struct hv_pvh_start_info si = {
		.magic = HV_PVH_MAGIC,
		.version = 1,
		.memmap_paddr = HV_START_INFO_GPA + HV_PVH_MEMMAP_OFF,
	};
	struct hv_pvh_memmap_entry mm[3] = {
		{ 0, HV_LOW_RAM_END, HV_PVH_MEMMAP_RAM, 0 },
		{ HV_LOW_RAM_END, 0x100000 - HV_LOW_RAM_END, HV_PVH_MEMMAP_RESERVED, 0 },
		{ 0x100000, vm->mem_size - 0x100000, HV_PVH_MEMMAP_RAM, 0 },
	};
	size_t max = HV_START_INFO_SIZE - HV_PVH_CMDLINE_OFF - 1;

	si.memmap_entries = vm->mem_size > 0x100000 ? 3 : 2;
	if (cmdline) {
		size_t n = strnlen(cmdline, max);

		memcpy(base + HV_PVH_CMDLINE_OFF, cmdline, n);
		base[HV_PVH_CMDLINE_OFF + n] = 0;
		si.cmdline_paddr = HV_START_INFO_GPA + HV_PVH_CMDLINE_OFF;
	}
	memcpy(base, &si, sizeof(si));
	memcpy(base + HV_PVH_MEMMAP_OFF, mm, sizeof(mm));
}

int hv_pvh_load_image(struct hv_vm *vm, const char *name, const void *data,
		      size_t size, const char *cmdline, uint64_t *entry)
{
	struct hv_image im = { .path = name, .data = data, .size = size };
	int rc = hv_load_image(vm, &im, entry);

	if (rc == 0)
		hv_write_start_info(vm, cmdline);
	return rc;
}

int hv_pvh_load(struct hv_vm *vm, const char *path, const char *cmdline,
		uint64_t *entry)
{
	struct stat st;
	void *map;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		hv_log("cannot read kernel image %s: %s", path, strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		close(fd);
		hv_log("%s: not an ELF file", path);
		return -ENOEXEC;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		rc = -errno;
		hv_log("cannot map kernel image %s: %s", path, strerror(-rc));
		return rc;
	}
	rc = hv_pvh_load_image(vm, path, map, (size_t)st.st_size, cmdline, entry);
	munmap(map, (size_t)st.st_size);
	return rc;
}
