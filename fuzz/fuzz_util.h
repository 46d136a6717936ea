/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the libFuzzer harnesses in fuzz/: a cursor that turns
 * the fuzzer's bytes into values, the checks that stop a run with a
 * message (a failed check is a finding, like a sanitizer report), and the
 * resources a harness must prove it does not leak.
 */
#ifndef GPUP_FUZZ_UTIL_H
#define GPUP_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads past the end yield zeros, so every input means something. */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

uint8_t fz_u8(struct fz_in *in);
uint16_t fz_u16(struct fz_in *in);
uint32_t fz_u32(struct fz_in *in);
uint64_t fz_u64(struct fz_in *in);
/* Up to len bytes (fewer at the end): how many were copied. */
size_t fz_bytes(struct fz_in *in, void *buf, size_t len);

/* A finding: print it and abort, so libFuzzer saves the input. */
#define fz_check(cond, ...)                                                    \
	do {                                                                   \
		if (!(cond))                                                   \
			fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);       \
	} while (0)
void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));

/* Open file descriptors of this process (/proc/self/fd). */
unsigned int fz_count_fds(void);
/* Whether len bytes at p are all zero. */
bool fz_all_zero(const void *p, size_t len);

/* A private temporary directory, created once per process and removed at
 * exit with everything under it; on tmpfs where there is one, so that
 * harnesses that persist state do not wear a disk. */
const char *fz_tmpdir(void);
/* Remove everything under dir (not dir itself). */
void fz_empty_dir(const char *dir);

/* Whether FUZZ_VERBOSE is set: harnesses keep the daemon's logs quiet
 * otherwise. */
int fz_verbose(void);

/* A log function for the code under test: stderr with FUZZ_VERBOSE,
 * silence otherwise. */
void (*fz_log(void))(const char *fmt, ...);

/* A well-formed vfio-user VERSION request (16 fds, 1 MiB transfers)
 * into buf (512 bytes are enough): its length. */
size_t fz_vfu_version_msg(uint8_t *buf, uint16_t id);

/* Whether m, read on a vfio-user client's end, is a DMA_READ / DMA_WRITE
 * the server sent of its own (into memory mapped without an fd); one of
 * those must be well formed (checked here), anything else must be a
 * reply (the caller checks). */
struct vfu_msg;
bool fz_vfu_dma_request(const struct vfu_msg *m);

#endif
