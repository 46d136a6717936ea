// SPDX-License-Identifier: MIT
/*
 * Helpers shared by the libFuzzer harnesses (see fuzz_util.h).
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/fuzz_util.h"
#include "uapi/vfio_user.h"
#include "vfu/vfu.h"

uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v = 0;

	fz_bytes(in, &v, 1);
	return v;
}

uint16_t fz_u16(struct fz_in *in)
{
	uint16_t v = 0;

	fz_bytes(in, &v, sizeof(v));
	return v;
}

uint32_t fz_u32(struct fz_in *in)
{
	uint32_t v = 0;

	fz_bytes(in, &v, sizeof(v));
	return v;
}

uint64_t fz_u64(struct fz_in *in)
{
	uint64_t v = 0;

	fz_bytes(in, &v, sizeof(v));
	return v;
}

size_t fz_bytes(struct fz_in *in, void *buf, size_t len)
{
	size_t n = len < in->n ? len : in->n;

	memcpy(buf, in->p, n);
	memset((uint8_t *)buf + n, 0, len - n);
	in->p += n;
	in->n -= n;
	return n;
}

static void tmpdir_remove(void);

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\n==FUZZ CHECK FAILED== %s:%d: %s\n  ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* abort() skips atexit: do not leave the temporary directory. */
	tmpdir_remove();
	abort();
}

unsigned int fz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned int n = 0;

	fz_check(d, "cannot list /proc/self/fd");
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory stream's own fd */
}

bool fz_all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	/* A VRAM window just given back is fresh anonymous memory: fault its
	 * pages in with one call rather than one trap per page (the bytes
	 * read are the same; on failure the reads fault them in). */
	if (len >= 4096 && (uintptr_t)p % 4096 == 0)
		(void)madvise((void *)p, len, MADV_POPULATE_READ);
	return !len || (b[0] == 0 && memcmp(b, b + 1, len - 1) == 0);
}

static void remove_tree(const char *dir, int self)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];

	if (!d)
		return;
	while ((e = readdir(d))) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!lstat(path, &st) && S_ISDIR(st.st_mode))
			remove_tree(path, 1);
		else
			unlink(path);
	}
	closedir(d);
	if (self)
		rmdir(dir);
}

void fz_empty_dir(const char *dir)
{
	remove_tree(dir, 0);
}

static char tmpdir[256];

static void tmpdir_remove(void)
{
	if (tmpdir[0])
		remove_tree(tmpdir, 1);
}

const char *fz_tmpdir(void)
{
	struct stat st;

	if (tmpdir[0])
		return tmpdir;
	snprintf(tmpdir, sizeof(tmpdir), "%s/gpup-fuzz-XXXXXX",
		 stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp");
	fz_check(mkdtemp(tmpdir), "cannot create %s", tmpdir);
	atexit(tmpdir_remove);
	return tmpdir;
}

int fz_verbose(void)
{
	return getenv("FUZZ_VERBOSE") != NULL;
}

static void quiet_log(const char *fmt, ...)
{
	(void)fmt;
}

static void verbose_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void (*fz_log(void))(const char *fmt, ...)
{
	return fz_verbose() ? verbose_log : quiet_log;
}

size_t fz_vfu_version_msg(uint8_t *buf, uint16_t id)
{
	static const char caps[] = "{\"capabilities\":{\"max_msg_fds\":16,"
				   "\"max_data_xfer_size\":1048576}}";
	struct vfio_user_header *h = (void *)buf;
	struct vfio_user_version *v = (void *)(h + 1);

	*h = (struct vfio_user_header){ .msg_id = id, .command = VFIO_USER_VERSION };
	v->major = VFIO_USER_MAJOR;
	v->minor = VFIO_USER_MINOR;
	memcpy(v->data, caps, sizeof(caps));
	h->msg_size = (uint32_t)(sizeof(*h) + sizeof(*v) + sizeof(caps));
	return h->msg_size;
}

bool fz_vfu_dma_request(const struct vfu_msg *m)
{
	const struct vfio_user_dma_rw *rw = (const void *)m->data;
	bool wr = m->hdr.command == VFIO_USER_DMA_WRITE;

	if ((m->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND)
		return false;
	fz_check(m->hdr.command == VFIO_USER_DMA_READ || wr, "server command %u",
		 m->hdr.command);
	fz_check(!m->nfds && m->len >= sizeof(*rw), "DMA request of %u bytes, %u fds", m->len,
		 m->nfds);
	fz_check(rw->count > 0 && rw->count <= VFU_SERVER_MAX_XFER &&
			 m->len == sizeof(*rw) + (wr ? rw->count : 0),
		 "DMA request count %llu in %u bytes", (unsigned long long)rw->count, m->len);
	return true;
}
