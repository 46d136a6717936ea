// SPDX-License-Identifier: MIT
/*
 * PVH boot: load an ELF image's PT_LOAD segments at their physical
 * addresses, find the XEN_ELFNOTE_PHYS32_ENTRY note, and write the
 * hvm_start_info block (with a memory map and the command line) that the
 * PVH ABI hands the guest in ebx.  This is the direct-boot ABI QEMU's
 * -kernel and Firecracker also speak, so one image boots under all three.
 *
 * The image is read piece by piece (headers, notes, each segment straight
 * into guest RAM), never mapped: a file that shrinks meanwhile is a read
 * error, not a SIGBUS.  bss is not cleared because a fresh memfd already
 * reads as zeros, and touching it would fault in pages the guest may
 * never use.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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

/* An image in memory (data) or read from a file (fd) as it is walked: a
 * file is never mapped, so one that shrinks under the loader is a read
 * error, not a SIGBUS. */
struct hv_image {
	const char *path;
	const uint8_t *data;
	int fd;
	uint64_t size;
	bool is64;
	bool io_failed;              /* a read failed: said once, nothing more */
	uint16_t phnum;
	union {
		Elf64_Ehdr e64;
		Elf32_Ehdr e32;
		unsigned char id[EI_NIDENT];
	} eh;
};

/* One line about the image, unless a failed read has already said why. */
__attribute__((format(printf, 2, 3)))
static void hv_image_err(const struct hv_image *im, const char *fmt, ...)
{
	char line[400];
	va_list ap;

	if (im->io_failed)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	hv_log("%s: %s", im->path, line);
}

/* len bytes at off, which the caller has checked lie inside the image. */
static bool hv_image_read(struct hv_image *im, uint64_t off, void *buf, size_t len)
{
	size_t got = 0;

	if (im->data) {
		memcpy(buf, im->data + off, len);
		return true;
	}
	while (got < len && !im->io_failed) {
		ssize_t n = pread(im->fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			hv_log("%s: read failed: %s (did the file change while loading?)",
			       im->path, n < 0 ? strerror(errno) : "unexpected end of file");
			im->io_failed = true;
		}
		got += n > 0 ? (size_t)n : 0;
	}
	return !im->io_failed;
}

static bool hv_image_phdr(struct hv_image *im, unsigned int i, struct hv_phdr *ph)
{
	uint64_t phoff = im->is64 ? im->eh.e64.e_phoff : im->eh.e32.e_phoff;
	uint64_t entsize = im->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);

	if (phoff > im->size || (i + 1) * entsize > im->size - phoff)
		return false;
	if (im->is64) {
		Elf64_Phdr p;

		if (!hv_image_read(im, phoff + i * entsize, &p, sizeof(p)))
			return false;
		*ph = (struct hv_phdr){ p.p_type, p.p_offset, p.p_paddr,
					p.p_filesz, p.p_memsz };
	} else {
		Elf32_Phdr p;

		if (!hv_image_read(im, phoff + i * entsize, &p, sizeof(p)))
			return false;
		*ph = (struct hv_phdr){ p.p_type, p.p_offset, p.p_paddr,
					p.p_filesz, p.p_memsz };
	}
	return true;
}

static int hv_image_check_header(struct hv_image *im)
{
	const unsigned char *id = im->eh.id;
	uint16_t machine, type, phentsize;
	bool bad_phent;

	if (im->size < sizeof(Elf32_Ehdr) ||
	    !hv_image_read(im, 0, &im->eh, im->size < sizeof(im->eh) ? sizeof(Elf32_Ehdr)
								       : sizeof(im->eh)) ||
	    memcmp(id, ELFMAG, SELFMAG)) {
		hv_image_err(im, "not an ELF file");
		return -ENOEXEC;
	}
	im->is64 = id[EI_CLASS] == ELFCLASS64;
	if ((!im->is64 && id[EI_CLASS] != ELFCLASS32) || id[EI_DATA] != ELFDATA2LSB ||
	    (im->is64 && im->size < sizeof(Elf64_Ehdr))) {
		hv_image_err(im, "not a little-endian 32- or 64-bit ELF file");
		return -ENOEXEC;
	}
	if (im->is64) {
		machine = im->eh.e64.e_machine, type = im->eh.e64.e_type;
		im->phnum = im->eh.e64.e_phnum;
		phentsize = im->eh.e64.e_phentsize;
		bad_phent = phentsize != sizeof(Elf64_Phdr);
	} else {
		machine = im->eh.e32.e_machine, type = im->eh.e32.e_type;
		im->phnum = im->eh.e32.e_phnum;
		phentsize = im->eh.e32.e_phentsize;
		bad_phent = phentsize != sizeof(Elf32_Phdr);
	}
	if ((machine != EM_X86_64 && machine != EM_386) || type != ET_EXEC) {
		hv_image_err(im, "not an x86 executable ELF image");
		return -ENOEXEC;
	}
	/* Even 0 is wrong: the headers could not be walked. */
	if (im->phnum && bad_phent) {
		hv_image_err(im, "program header entries of %u bytes, not this ELF class's",
			     phentsize);
		return -ENOEXEC;
	}
	return 0;
}

/* Walk one PT_NOTE segment for the PVH entry note: 1 found, 0 not
 * there, -ENOEXEC for a note that does not fit its segment. */
static int hv_find_note(struct hv_image *im, const struct hv_phdr *ph,
			uint64_t *entry)
{
	uint64_t off = ph->offset, end = ph->offset + ph->filesz;

	if (ph->offset > im->size || ph->filesz > im->size - ph->offset)
		goto bad;
	while (off + 12 <= end) {
		uint32_t n[3], e32;
		uint64_t name, desc;
		char nm[4];

		if (!hv_image_read(im, off, n, sizeof(n)))
			return -EIO;
		name = off + 12;
		desc = name + ((n[0] + 3ull) & ~3ull);
		off = desc + ((n[1] + 3ull) & ~3ull);
		if (off > end)
			goto bad;
		if (n[2] != HV_XEN_ELFNOTE_PHYS32_ENTRY || n[0] != 4)
			continue;
		if (!hv_image_read(im, name, nm, 4))
			return -EIO;
		if (memcmp(nm, "Xen", 4))
			continue;
		if (n[1] != 4 && n[1] != 8) {
			hv_image_err(im, "the PVH entry note holds %u bytes, not 4 or 8", n[1]);
			return -ENOEXEC;
		}
		if (n[1] == 4 && hv_image_read(im, desc, &e32, 4))
			*entry = e32;
		else if (n[1] == 8)
			hv_image_read(im, desc, entry, 8);
		return im->io_failed ? -EIO : 1;
	}
	return 0;
bad:
	hv_image_err(im, "a note runs past its segment or the file");
	return -ENOEXEC;
}

/* Load one PT_LOAD segment.  Segments come in ascending order of address
 * and never overlap (*floor is where the previous one ended), so no byte
 * is written twice and none lands on the boot information. */
static int hv_load_segment(struct hv_vm *vm, struct hv_image *im,
			   const struct hv_phdr *ph, uint64_t *floor)
{
	uint64_t si_end = HV_START_INFO_GPA + HV_START_INFO_SIZE;

	if (ph->offset > im->size || ph->filesz > im->size - ph->offset ||
	    ph->filesz > ph->memsz) {
		hv_image_err(im, "a segment lies outside the file");
		return -ENOEXEC;
	}
	if (ph->paddr > vm->mem_size || ph->memsz > vm->mem_size - ph->paddr) {
		hv_image_err(im, "segment at 0x%llx (%llu bytes) does not fit in %llu "
			     "bytes of guest RAM; use a larger --mem",
			     (unsigned long long)ph->paddr, (unsigned long long)ph->memsz,
			     (unsigned long long)vm->mem_size);
		return -EFBIG;
	}
	if (ph->memsz && ph->paddr < si_end && HV_START_INFO_GPA < ph->paddr + ph->memsz) {
		hv_image_err(im, "segment at 0x%llx overlaps the boot information at "
			     "0x%llx", (unsigned long long)ph->paddr, HV_START_INFO_GPA);
		return -ENOEXEC;
	}
	if (ph->memsz && ph->paddr < *floor) {
		hv_image_err(im, "segment at 0x%llx overlaps or comes before the one "
			     "ending at 0x%llx", (unsigned long long)ph->paddr,
			     (unsigned long long)*floor);
		return -ENOEXEC;
	}
	if (!hv_image_read(im, ph->offset, vm->mem + ph->paddr, ph->filesz))
		return -EIO;
	if (ph->memsz)
		*floor = ph->paddr + ph->memsz;
	return 0;
}

/* Whether the entry point lies inside a loaded segment. */
static bool hv_entry_loaded(struct hv_image *im, uint64_t entry)
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
	if (im->io_failed)
		return -EIO;
	for (unsigned int i = 0; rc == 0 && i < im->phnum; i++) {
		if (!hv_image_phdr(im, i, &ph)) {
			hv_image_err(im, "program headers lie outside the file");
			return im->io_failed ? -EIO : -ENOEXEC;
		}
		if (ph.type == PT_NOTE) {
			/* Every note segment is checked; the first entry wins. */
			uint64_t later;
			int f = hv_find_note(im, &ph, found ? &later : entry);

			rc = f < 0 ? f : 0;
			found |= f > 0;
		}
		if (rc == 0 && ph.type == PT_LOAD) {
			rc = hv_load_segment(vm, im, &ph, &floor);
			nload++;
		}
	}
	if (rc)
		return rc;
	if (!found || !nload) {
		hv_image_err(im, "no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "
			     "not a PVH-bootable image");
		return -ENOEXEC;
	}
	if (!hv_entry_loaded(im, *entry)) {
		hv_image_err(im, "PVH entry 0x%llx is outside the image's loaded segments",
			     (unsigned long long)*entry);
		return im->io_failed ? -EIO : -ENOEXEC;
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

static int hv_pvh_load_from(struct hv_vm *vm, struct hv_image *im, const char *cmdline,
			    uint64_t *entry)
{
	int rc = hv_load_image(vm, im, entry);

	if (rc == 0)
		hv_write_start_info(vm, cmdline);
	return rc;
}

int hv_pvh_load_image(struct hv_vm *vm, const char *name, const void *data,
		      size_t size, const char *cmdline, uint64_t *entry)
{
	struct hv_image im = { .path = name, .data = data, .fd = -1, .size = size };

	return hv_pvh_load_from(vm, &im, cmdline, entry);
}

int hv_pvh_load(struct hv_vm *vm, const char *path, const char *cmdline,
		uint64_t *entry)
{
	struct hv_image im = { .path = path };
	struct stat st;
	int rc;

	/* O_NONBLOCK: opening a FIFO must not wait for a writer; it is
	 * refused as not a regular file below. */
	im.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (im.fd < 0 || fstat(im.fd, &st) < 0) {
		rc = -errno;
		hv_log("cannot read kernel image %s: %s", path, strerror(-rc));
		if (im.fd >= 0)
			close(im.fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		close(im.fd);
		hv_log("%s: not an ELF file", path);
		return -ENOEXEC;
	}
	im.size = (uint64_t)st.st_size;
	rc = hv_pvh_load_from(vm, &im, cmdline, entry);
	close(im.fd);
	return rc;
}
