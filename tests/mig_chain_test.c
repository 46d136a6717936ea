// SPDX-License-Identifier: MIT
/*
 * Checkpoint chains (migrate/chain.c, chain_load.c): a base and
 * increments written page by page restore to exactly what was written,
 * the newest base counts and compaction drops what is older, and every
 * kind of damage is refused in one line naming the file: a byte changed
 * in a head or a payload, a file cut short, a missing base, a link
 * missing in the middle, a link of another chain, a link of another
 * partition type.  A writer that dies leaves the previous chain whole.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migrate/mig.h"

#define PG MIG_PAGE_SIZE
#define NPAGES 600u
#define SIZE ((uint64_t)NPAGES * PG)
#define PFX "11111111-2222-3333-4444-555555555555"

static char dir[64];
static uint8_t *vram, *back;
static struct mig_ident ident = { .model = "sim-gen2", .type = "sim-t", .vram_size = SIZE,
				  .features = 0x3 };
static uint32_t next_index;
static uint64_t base_id, prev_id;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gpup-chain-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	vram = calloc(1, SIZE);
	back = calloc(1, SIZE);
	next_index = 0;
	base_id = prev_id = 0;
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	free(vram);
	free(back);
}

TestSuite(mig_chain, .init = setup, .fini = teardown, .timeout = 30);

static void fill(uint64_t page, uint64_t n, uint8_t seed)
{
	for (uint64_t i = 0; i < n * PG; i++)
		vram[page * PG + i] = (uint8_t)(seed + i * 7 + (i >> 12));
}

/* A base of all of vram, or an increment of pages [first, first + n). */
static uint64_t write_link(bool base, uint64_t first, uint64_t n, uint32_t blob)
{
	struct mig_link_cfg cfg = { .dir = dir, .prefix = PFX, .ident = ident, .base = base,
				    .index = next_index, .base_id = base_id, .prev_id = prev_id };
	struct mig_link_writer *w;
	char err[256] = "";
	uint64_t id;

	cr_assert_eq(mig_link_begin(&w, &cfg, err, sizeof(err)), 0, "%s", err);
	if (base)
		cr_assert_eq(mig_link_pages(w, 0, vram, NPAGES, true), 0);
	else
		cr_assert_eq(mig_link_pages(w, first, vram + first * PG, n, false), 0);
	cr_assert_eq(mig_link_state(w, &blob, sizeof(blob)), 0);
	cr_assert_eq(mig_link_commit(w, 1000 + next_index, &id, err, sizeof(err)), 0, "%s", err);
	if (base)
		base_id = id;
	prev_id = id;
	next_index++;
	return id;
}

static int load(char *err, size_t len, uint32_t *blob, struct mig_chain_load *out)
{
	struct mig_chain_load l = { .ident = &ident, .vram = back, .state = blob,
				    .state_max = sizeof(*blob) };
	int rc;

	memset(back, 0, SIZE);
	err[0] = 0;
	rc = mig_chain_load(dir, PFX, &l, err, len);
	if (out)
		*out = l;
	return rc;
}

static void path_of(char *p, size_t n, uint32_t index, bool base)
{
	snprintf(p, n, "%s/%s.%08u.%s", dir, PFX, index, base ? "base" : "incr");
}

static void flip(uint32_t index, bool base, off_t at)
{
	char p[256];
	uint8_t b;
	int fd;

	path_of(p, sizeof(p), index, base);
	fd = open(p, O_RDWR);
	cr_assert_geq(fd, 0, "%s", p);
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

/* A base with data, holes and pages later zeroed, then increments. */
static void three_links(void)
{
	fill(0, 10, 1);
	fill(300, 300, 2);      /* more than one VRAM chunk */
	write_link(true, 0, 0, 0xb0);
	fill(5, 2, 3);
	memset(vram + 300 * PG, 0, 4 * PG);
	write_link(false, 0, 310, 0xb1);
	fill(599, 1, 4);
	write_link(false, 599, 1, 0xb2);
}

Test(mig_chain, base_and_increments_restore_exactly)
{
	struct mig_chain_load l;
	uint32_t blob = 0;
	char err[512];

	three_links();
	cr_assert_eq(load(err, sizeof(err), &blob, &l), 0, "%s", err);
	cr_assert_eq(memcmp(back, vram, SIZE), 0);
	cr_assert_eq(blob, 0xb2);
	cr_assert_eq(l.links, 3);
	cr_assert_eq(l.base_index, 0);
	cr_assert_eq(l.last_index, 2);
	cr_assert_eq(l.last_id, prev_id);
	cr_assert_eq(l.last_taken_ns, 1002);
	cr_assert_eq(l.state_len, sizeof(blob));
}

/* Into a file, as a recovery restores a partition's VRAM file: written
 * with pwrite, and a page that became zero is a hole again. */
Test(mig_chain, restores_into_a_file_and_punches_zeroed_pages)
{
	int fd = memfd_create("chain-test", 0);
	struct mig_chain_load l = { .ident = &ident, .to_fd = true, .vram_fd = fd };
	uint32_t blob = 0;
	char err[512];

	l.state = &blob;
	l.state_max = sizeof(blob);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)SIZE), 0);
	three_links();
	cr_assert_eq(mig_chain_load(dir, PFX, &l, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pread(fd, back, SIZE, 0), (ssize_t)SIZE);
	cr_assert_eq(memcmp(back, vram, SIZE), 0);
	cr_assert_eq(blob, 0xb2);
	/* pages 300..303 were zeroed by the first increment; 304 has data */
	cr_assert_eq(lseek(fd, 300 * PG, SEEK_DATA), 304 * PG);
	/* never written: holes all along */
	cr_assert_eq(lseek(fd, 10 * PG, SEEK_DATA), 304 * PG);
	close(fd);
}

Test(mig_chain, a_new_base_counts_and_compaction_drops_older_links)
{
	uint32_t blob = 0, next = 0;
	char err[512], p[256];

	three_links();
	fill(100, 3, 9);
	write_link(true, 0, 0, 0xc3);
	fill(101, 1, 10);
	write_link(false, 101, 1, 0xc4);
	cr_assert_eq(load(err, sizeof(err), &blob, NULL), 0, "%s", err);
	cr_assert_eq(memcmp(back, vram, SIZE), 0);
	cr_assert_eq(blob, 0xc4);
	cr_assert_eq(mig_chain_compact(dir, PFX, 3), 0);
	path_of(p, sizeof(p), 0, true);
	cr_assert_neq(access(p, F_OK), 0, "the old base is still there");
	path_of(p, sizeof(p), 2, false);
	cr_assert_neq(access(p, F_OK), 0, "an old increment is still there");
	cr_assert_eq(load(err, sizeof(err), &blob, NULL), 0, "%s", err);
	cr_assert_eq(memcmp(back, vram, SIZE), 0);
	cr_assert_eq(mig_chain_scan(dir, PFX, &next), 0);
	cr_assert_eq(next, 5);
}

Test(mig_chain, a_changed_payload_byte_is_named)
{
	uint32_t blob;
	char err[512], want[300];

	three_links();
	flip(1, false, 32 + 96 + 32 + 48 + 32 + 16 + 5); /* inside the first VRAM page */
	cr_assert_eq(load(err, sizeof(err), &blob, NULL), -EBADMSG);
	snprintf(want, sizeof(want), "chain refused: %s/" PFX ".00000001.incr: chunk 2 (VRAM) at "
		 "byte 208: payload checksum mismatch", dir);
	cr_assert_str_eq(err, want);
	for (uint64_t i = 0; i < SIZE; i++)
		cr_assert_eq(back[i], 0, "a refused chain wrote VRAM");
}

Test(mig_chain, a_changed_head_byte_is_named)
{
	uint32_t blob;
	char err[512], want[300];

	three_links();
	flip(0, true, 32 + 96 + 4); /* the LINK chunk's kind */
	cr_assert_eq(load(err, sizeof(err), &blob, NULL), -EBADMSG);
	snprintf(want, sizeof(want), "chain refused: %s/" PFX ".00000000.base: chunk 1 at byte "
		 "128: chunk head checksum mismatch", dir);
	cr_assert_str_eq(err, want);
}

Test(mig_chain, a_truncated_link_is_named)
{
	uint32_t blob;
	char err[512], p[256], want[300];
	struct stat st;

	three_links();
	path_of(p, sizeof(p), 2, false);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(truncate(p, st.st_size - 40), 0);
	cr_assert_eq(load(err, sizeof(err), &blob, NULL), -ENODATA);
	snprintf(want, sizeof(want), "chain refused: %s/" PFX ".00000002.incr: truncated at byte "
		 "%lld: no END chunk", dir, (long long)st.st_size - 40);
	cr_assert_str_eq(err, want);
}

Test(mig_chain, a_missing_base_is_refused)
{
	uint32_t blob;
	char err[512], p[256], want[300];

	three_links();
	path_of(p, sizeof(p), 0, true);
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(load(err, sizeof(err), &blob, NULL), -ENOENT);
	snprintf(want, sizeof(want), "chain refused: no base of " PFX " in %s", dir);
	cr_assert_str_eq(err, want);
}

Test(mig_chain, a_missing_middle_link_is_named)
{
	uint32_t blob;
	char err[512], p[256], want[300];

	three_links();
	path_of(p, sizeof(p), 1, false);
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(load(err, sizeof(err), &blob, NULL), -EBADMSG);
	snprintf(want, sizeof(want), "chain refused: link 1 missing after %s/" PFX ".00000000.base",
		 dir);
	cr_assert_str_eq(err, want);
}

/* An increment of another chain put in a link's place: it names a base
 * and a predecessor that are not this chain's. */
Test(mig_chain, a_foreign_link_is_named)
{
	uint32_t blob;
	char err[512], p[256], q[300];

	three_links();
	path_of(p, sizeof(p), 2, false);
	snprintf(q, sizeof(q), "%s.keep", p);
	cr_assert_eq(rename(p, q), 0);
	/* the same index again, after a fresh base of the same number 0 */
	next_index = 0;
	base_id = prev_id = 0;
	write_link(true, 0, 0, 0xd0);
	write_link(false, 1, 1, 0xd1);
	cr_assert_eq(rename(q, p), 0);
	cr_assert_eq(load(err, sizeof(err), &blob, NULL), -EBADMSG);
	cr_assert(strstr(err, PFX ".00000002.incr follows base "), "%s", err);
	cr_assert(strstr(err, ", not " PFX ".00000000.base and " PFX ".00000001.incr of this chain"),
		  "%s", err);
}

Test(mig_chain, a_link_of_another_type_is_refused)
{
	struct mig_ident other = ident;
	struct mig_chain_load l = { .ident = &other, .vram = back, .state = NULL };
	char err[512];

	three_links();
	snprintf(other.type, sizeof(other.type), "sim-u");
	cr_assert_eq(mig_chain_load(dir, PFX, &l, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, PFX ".00000000.base: chunk 0 (HEADER) at byte 0: another partition "
			      "type or VRAM size than this partition's"), "%s", err);
}

/* A writer killed in the middle of a link (its file half written under
 * the temporary name): the chain is the previous one, and the next scan
 * removes the leftover. */
Test(mig_chain, a_writer_killed_midway_leaves_the_previous_chain)
{
	struct mig_link_cfg cfg;
	uint32_t blob = 0, next;
	uint8_t *was = malloc(SIZE);
	char err[512];
	pid_t pid;
	int st, n = 0;
	DIR *d;
	struct dirent *de;

	three_links();
	memcpy(was, vram, SIZE);
	cfg = (struct mig_link_cfg){ .dir = dir, .prefix = PFX, .ident = ident, .index = 3,
				     .base_id = base_id, .prev_id = prev_id };
	pid = fork();
	if (pid == 0) {
		struct mig_link_writer *w;

		fill(0, 200, 77);
		if (mig_link_begin(&w, &cfg, NULL, 0) || mig_link_pages(w, 0, vram, 200, false))
			_exit(1);
		_exit(0); /* dies before STATE, END and the rename */
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_eq(load(err, sizeof(err), &blob, NULL), 0, "%s", err);
	cr_assert_eq(memcmp(back, was, SIZE), 0);
	cr_assert_eq(blob, 0xb2);
	cr_assert_eq(mig_chain_scan(dir, PFX, &next), 0);
	cr_assert_eq(next, 3);
	d = opendir(dir);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.' || strstr(de->d_name, ".tmp.") != NULL;
	closedir(d);
	cr_assert_eq(n, 3, "the dead writer's file is still there");
	free(was);
}

/* Bytes that are no link at all. */
Test(mig_chain, garbage_is_refused)
{
	struct mig_link_info info;
	uint8_t buf[32] = { 0 };
	char err[256];

	cr_assert_eq(mig_link_check(buf, sizeof(buf), NULL, &info, err, sizeof(err)), -EBADMSG);
	cr_assert_str_eq(err, "chunk 0 at byte 0: chunk head checksum mismatch");
	cr_assert_eq(mig_link_check(buf, 10, NULL, &info, err, sizeof(err)), -ENODATA);
	cr_assert_str_eq(err, "truncated at byte 10: no END chunk");
}
