/* SPDX-License-Identifier: MIT */
/*
 * migrate: the device side of VFIO v2 migration, independent of the
 * device.  A device model (the vGPU) hands mig_dev_create an ops table and
 * forwards vfio-user's DEVICE_FEATURE, MIG_DATA_READ, MIG_DATA_WRITE and
 * DEVICE_RESET to it; this module runs the state machine, writes and
 * parses the stream of uapi/gpup_mig.h, and serves DMA logging from the
 * device's IOMMU domain.  docs/MIGRATION.md has the whole picture.
 *
 * DOC: the state machine
 *
 * States and arcs are those of <linux/vfio.h> (enum
 * vfio_device_mig_state): STOP_COPY always, RUNNING_P2P with
 * VFIO_MIGRATION_P2P, PRE_COPY with VFIO_MIGRATION_PRE_COPY, PRE_COPY_P2P
 * with both.  A request for a state that is not a direct arc away is
 * walked one arc at a time along the shortest path that has no saving
 * state (PRE_COPY, PRE_COPY_P2P, STOP_COPY) inside it, unless the walk
 * starts and ends in the saving group.  The P2P states behave as their
 * non-P2P twins: a partition does no peer-to-peer DMA.  ERROR is left
 * only through mig_dev_device_reset.
 *
 * DOC: threads and errors
 *
 * Every call but mig_dev_state and mig_dev_stats comes from one thread at
 * a time (the vfio-user connection's); those two may be called from any
 * thread at any time.  No lock is held while VRAM is copied.  Errors are
 * negative errno values.
 */
#ifndef GPUP_MIGRATE_MIG_H
#define GPUP_MIGRATE_MIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uapi/gpup_mig.h"
#include "uapi/vfio_mig.h"

/* The granule of VRAM tracking and of the stream. */
#define MIG_PAGE_SIZE GPUP_MIG_PAGE_SIZE

/* The kernel's values of enum vfio_device_mig_state. */
enum mig_state {
	MIG_ERROR = 0,
	MIG_STOP = 1,
	MIG_RUNNING = 2,
	MIG_STOP_COPY = 3,
	MIG_RESUMING = 4,
	MIG_RUNNING_P2P = 5,
	MIG_PRE_COPY = 6,
	MIG_PRE_COPY_P2P = 7,
};
#define MIG_NSTATES 8

/* "RUNNING", "PRE_COPY", ...; "?" for a value that is not a state. */
const char *mig_state_name(enum mig_state s);

/*
 * The next state on the way from cur to target for a device offering
 * `features` (VFIO_MIGRATION_STOP_COPY | _P2P | _PRE_COPY): 0 and *next
 * (target itself when it is one arc away; cur when cur == target), or
 * -EINVAL when either state is unknown or not offered, cur is ERROR,
 * target is ERROR, or no legal path exists (STOP_COPY -> PRE_COPY).
 * Features without VFIO_MIGRATION_STOP_COPY offer nothing.
 */
int mig_fsm_next(uint32_t features, enum mig_state cur, enum mig_state target,
		 enum mig_state *next);

/* What a stream says about its source, and what a destination compares:
 * type and vram_size must be equal, features a subset of its own. */
struct mig_ident {
	char model[GPUP_MIG_NAME_LEN];   /* GPU model, e.g. "sim-gen1" */
	char type[GPUP_MIG_NAME_LEN];    /* partition type name */
	uint64_t vram_size;              /* a multiple of MIG_PAGE_SIZE */
	uint64_t features;               /* compatibility feature mask */
};

/*
 * What a device implements to be migrated.  Every op gets the dev pointer
 * given to mig_dev_create and runs on the caller's thread.  Members marked
 * "can be NULL" are optional.
 */
struct mig_dev_ops {
	/* MIG_DEV_OPS_VERSION: the table may grow at its end. */
	unsigned int version;

	/* Fill *id: asked at create, at each save (the HEADER chunk) and
	 * each load (the comparison). */
	void (*ident)(void *dev, struct mig_ident *id);

	/* Stop every engine at a command or work-group boundary, in bounded
	 * time even with a long kernel queued, keeping all state (an
	 * interrupted command resumes where it stopped).  After it returns 0
	 * nothing writes VRAM or device state, and no interrupt or DMA is
	 * raised.  -errno if it could not: the device is then left running
	 * and the state change fails. */
	int (*quiesce)(void *dev);

	/* Undo quiesce: engines run again.  Called once for each quiesce
	 * that succeeded, also after a reset in between (which may have left
	 * the device not quiesced): it must then do no harm. */
	void (*resume)(void *dev);

	/* The partition's VRAM: its base, *size its length (the ident's
	 * vram_size).  Saving reads it (live during PRE_COPY), RESUMING
	 * writes it. */
	uint8_t *(*vram)(void *dev, uint64_t *size);

	/* on: forget what was tracked and from now on record every
	 * MIG_PAGE_SIZE page of VRAM an engine writes; off: stop recording
	 * (always succeeds).  A page must be recorded after the write to it
	 * has landed (as the IOMMU's dirty log does), or a harvest could
	 * clear it before a write the saver then misses.  0, or -errno when
	 * tracking could not start: entering PRE_COPY then fails with it.
	 * Can be NULL, with vram_harvest: PRE_COPY is then not offered. */
	int (*vram_track)(void *dev, bool on);

	/* OR into bitmap (one bit per page, bit i of word i / 64 for page i)
	 * every page written since tracking began or since the last harvest,
	 * and forget them.  Can be NULL with vram_track. */
	void (*vram_harvest)(void *dev, uint64_t *bitmap);

	/* Where written VRAM lies: the first offset at or after off that
	 * may hold data (SEEK_DATA on a VRAM file), the VRAM size if none,
	 * and in *end where that data ends (SEEK_HOLE).  Bytes before the
	 * returned offset are zero and were never written: the saver sends
	 * them as zero runs without reading them, so that saving a sparse
	 * partition does not allocate its holes.  Can be NULL: every page is
	 * read. */
	uint64_t (*vram_data)(void *dev, uint64_t off, uint64_t *end);

	/* The device's state other than VRAM, with the device quiesced:
	 * write at most max bytes into buf and return the length, or
	 * -errno (-ENOSPC: it does not fit). */
	int (*state_save)(void *dev, void *buf, size_t max);

	/* Check and apply a blob state_save made (maybe on another device
	 * of the same type): 0, or -errno (-EINVAL: a blob it refuses)
	 * with the device left as reset made it. */
	int (*state_load)(void *dev, const void *buf, size_t len);

	/* Back to the power-on state, VRAM zeroed (best as holes: loading
	 * then writes only the pages that hold data): on the way into
	 * RESUMING (the device quiesced) and in mig_dev_device_reset.  It
	 * may leave the device quiesced or not; nothing runs in the power-on
	 * state, and state_load decides what runs after a load. */
	void (*reset)(void *dev);

	/* The partition's IOMMU domain, for DMA_LOGGING_START/STOP/REPORT.
	 * Can be NULL, or return NULL: those features are then not offered
	 * (ENOTTY). */
	struct iommu_domain *(*iommu)(void *dev);

	/* Loading: put len bytes at off into VRAM, as a store through the
	 * vram mapping would, but where VRAM is a file by writing the file
	 * (pwrite): a page the load allocates is then filled as it is
	 * allocated, not zeroed first and faulted in through the mapping one
	 * page at a time (RESUMING starts from VRAM punched to holes).  0 or
	 * -errno, which fails the load.  Can be NULL: the loader copies
	 * through the mapping. */
	int (*vram_write)(void *dev, uint64_t off, const void *buf, size_t len);
};
#define MIG_DEV_OPS_VERSION 1u

struct mig_dev;

/* A migratable device over ops/dev, in RUNNING, offering `features`
 * (VFIO_MIGRATION_*; STOP_COPY is required, PRE_COPY is dropped when the
 * ops cannot track VRAM).  NULL and errno: EINVAL for another ops
 * version, a required op missing, features without STOP_COPY or with
 * unknown bits, a VRAM size that is not a page multiple; ENOMEM. */
struct mig_dev *mig_dev_create(const struct mig_dev_ops *ops, void *dev, uint32_t features);
/* Stops what is running (VRAM tracking, DMA logging it started, a
 * quiesce it made) and frees. */
void mig_dev_destroy(struct mig_dev *md);

/* One line per event worth an operator's eye (a refused stream says what
 * was wrong in it).  NULL, the default, writes them to stderr prefixed
 * "mig: ". */
void mig_dev_set_log(struct mig_dev *md, void (*log)(void *opaque, const char *line),
		     void *opaque);

/* Compress VRAM chunks with zstd at this level (0, the default: never).
 * A chunk that does not shrink is sent raw.  Readers take both. */
void mig_dev_set_compress(struct mig_dev *md, int level);

/*
 * vfio_user's DEVICE_FEATURE, with the signature of vfu_dev_ops.feature:
 * flags as in the request, in/in_len its data, reply data into out (at
 * most out_max bytes, the client's argsz less the 8-byte head): returns
 * the reply data's length.  Serves MIGRATION (GET), MIG_DEVICE_STATE
 * (GET, SET; data_fd is always -1: data flows through MIG_DATA_*),
 * DMA_LOGGING_START/STOP (SET), DMA_LOGGING_REPORT (GET).  A SET's reply
 * repeats its data (START's with the page size chosen).  PROBE answers 0
 * when the feature supports every GET/SET bit given with it.  -ENOTTY for
 * a feature not offered, -EINVAL for a bad flag combination, a GET or SET
 * the feature lacks, data or out_max shorter than the feature's struct;
 * a refused state change returns its own error (docs/MIGRATION.md).
 */
int mig_dev_feature(struct mig_dev *md, uint32_t flags, const void *in, uint32_t in_len,
		    void *out, uint32_t out_max);

/* MIG_DATA_READ: up to len bytes of the stream; fewer means no more data
 * (in PRE_COPY: for this round, a later read starts the next one with
 * the pages dirtied meanwhile; in STOP_COPY: the end).  -EINVAL outside
 * PRE_COPY, PRE_COPY_P2P and STOP_COPY; another -errno if the device
 * could not be read (state_save failed). */
int mig_dev_data_read(struct mig_dev *md, void *buf, uint32_t len);

/*
 * MIG_DATA_READ without copying VRAM where that is safe: the same bytes
 * mig_dev_data_read would give for a read of len, as at most max pieces
 * in iov (*niov of them; the fewer pieces, the more is copied).  In STOP_COPY the device
 * is quiesced, so a VRAM chunk is hashed and handed out in place: its
 * pieces point into VRAM, and whoever may still write VRAM then (a VMM's
 * vCPUs through BAR2) must be stopped until the pieces are sent, or the
 * destination refuses the chunk's checksum.  In PRE_COPY the pages are
 * copied into md's own buffer, which the pieces point into.  The pieces
 * stay valid until the next call on md.  The byte count, or -errno as
 * mig_dev_data_read; -EINVAL for max 0.
 */
int mig_dev_data_readv(struct mig_dev *md, uint32_t len, struct iovec *iov, unsigned int max,
		       unsigned int *niov);

/* After a full readv of len bytes went out (the client is busy taking it):
 * in STOP_COPY, hash the VRAM chunk that a next read of len would start
 * with, so that read does not wait for it (nothing of the stream is taken:
 * a read of another size, or none, is served as without it).  In PRE_COPY,
 * build the next reply of len bytes into a second buffer, leaving the last
 * reply's pieces as they are: those bytes are the stream's next whatever
 * the client does (a read of another size, or STOP_COPY, takes them
 * first).  pump, when not NULL, is called between the chunks it builds
 * (VRAM chunks are then at most MIG_PUMP_PAGES pages, some tens of
 * microseconds apart): the server's way to feed the socket the last
 * reply's end meanwhile. */
#define MIG_PUMP_PAGES 64u
void mig_dev_data_ahead(struct mig_dev *md, uint32_t len, void (*pump)(void *), void *pump_arg);

/* MIG_DATA_WRITE in RESUMING: takes all len bytes (split anywhere) or
 * refuses them: -EINVAL outside RESUMING, and once the stream is found
 * bad the error of docs/MIGRATION.md, for this write and every later one
 * until RESUMING is entered again or the device reset. */
int mig_dev_data_write(struct mig_dev *md, const void *buf, uint32_t len);

/* DEVICE_RESET: the device's reset op runs, any stream is dropped, VRAM
 * tracking and DMA logging stop, a quiesce is undone: RUNNING, from any
 * state, ERROR included.  A device's vfu reset op may be just this. */
void mig_dev_device_reset(struct mig_dev *md);

/* The current state; any thread. */
enum mig_state mig_dev_state(struct mig_dev *md);

/* The last failure's one-line description ("" if none): what a refused
 * stream or state change did wrong.  Connection thread only. */
const char *mig_dev_last_error(struct mig_dev *md);

struct mig_stats {
	enum mig_state state;
	/* The last save (or the one running). */
	uint64_t save_bytes;      /* stream bytes read so far */
	uint32_t save_rounds;     /* VRAM passes: pre-copy rounds + the final one */
	uint64_t pages_sent;      /* pages sent with data */
	uint64_t zero_pages;      /* pages sent as zero runs (16 bytes a run) */
	uint64_t dirty_pages;     /* pages harvested as dirtied after round 1 */
	uint64_t stop_copy_bytes; /* bytes read in STOP_COPY: what the stop cost */
	/* The last load. */
	uint64_t load_bytes;      /* stream bytes taken */
	/* Totals over the device's life. */
	uint64_t saves, loads;    /* completed (END read out / loaded into STOP) */
	uint64_t loads_refused;
};

/* A consistent snapshot; any thread. */
void mig_dev_stats(struct mig_dev *md, struct mig_stats *st);

/* ---- checkpoint files (mig_file.c) ---- */

/* Write a checkpoint of md into dir/name: the stream goes to a temporary
 * name in dir, is fsynced, renamed over name, and dir is fsynced, so name
 * is always either the previous checkpoint or the new one, whole.  A
 * running device (RUNNING) is pre-copied while it runs (if PRE_COPY is
 * offered: up to max_rounds rounds, or until a round sends fewer than
 * min_pages pages) and stopped only for the final copy, then runs again;
 * a stopped one (STOP) stays stopped.  0, or -errno with a line in err
 * (err may be NULL). */
struct mig_file_opts {
	unsigned int max_rounds;    /* 0: 8 */
	uint64_t min_pages;         /* 0: 64 */
};
int mig_file_save(struct mig_dev *md, const char *dir, const char *name,
		  const struct mig_file_opts *opts, char *err, size_t errlen);

/* Load dir/name into md (RUNNING or STOP) through RESUMING, with the
 * checks a live stream gets; md ends in the state it was in.  On failure
 * md is reset (RUNNING) and err names what was wrong. */
int mig_file_restore(struct mig_dev *md, const char *dir, const char *name, char *err,
		     size_t errlen);


/* ---- checkpoint chains (chain.c; docs/MIGRATION.md, "Failover") ----
 *
 * A chain is a full base then increments, each a file DIR/PREFIX.N.base
 * or DIR/PREFIX.N.incr (N: eight decimal digits, one more per link), in
 * the stream format with a LINK chunk (uapi/gpup_mig.h).  Every link is
 * written to a temporary name, fsynced, renamed and the directory
 * fsynced, so a writer killed at any point leaves the chain as it was.
 * The chain that counts is the newest base and the increments numbered
 * after it, without a gap; compaction removes what is older than a new
 * base once that base is durable.
 */
struct mig_link_writer;

struct mig_link_cfg {
	const char *dir, *prefix;
	struct mig_ident ident;
	bool base;
	uint32_t index;
	uint64_t base_id, prev_id;   /* increments: whom they follow */
};

/* Open link cfg->index for writing (a temporary file in dir): 0 and *w,
 * or -errno with a line in err. */
int mig_link_begin(struct mig_link_writer **w, const struct mig_link_cfg *cfg, char *err,
		   size_t errlen);
/* npages pages from page number `page`, their bytes at data: VRAM chunks
 * for pages with data; zero pages as ZERO chunks, or not at all with
 * skip_zero (a base's first walk: the reader starts from zero).  A page
 * given twice: the later copy counts.  0 or -errno. */
int mig_link_pages(struct mig_link_writer *w, uint64_t page, const uint8_t *data,
		   uint64_t npages, bool skip_zero);
/* The device's state blob (at most GPUP_MIG_MAX_STATE bytes), once. */
int mig_link_state(struct mig_link_writer *w, const void *blob, uint32_t len);
/* END, the LINK chunk (taken_ns: CLOCK_REALTIME of the final copy),
 * fsync, rename, directory fsync; frees w.  0 and *id (the link's
 * identity), or -errno with a line in err and nothing of the chain
 * changed. */
int mig_link_commit(struct mig_link_writer *w, uint64_t taken_ns, uint64_t *id, char *err,
		    size_t errlen);
/* Drop a link being written: its temporary file goes. */
void mig_link_abort(struct mig_link_writer *w);

/* The next free link number of PREFIX in dir (0 for none), removing the
 * temporary files dead writers left.  0 or -errno. */
int mig_chain_scan(const char *dir, const char *prefix, uint32_t *next);
/* Remove PREFIX's links older than base index `keep` (the newest base,
 * durable), then fsync dir.  0 or -errno. */
int mig_chain_compact(const char *dir, const char *prefix, uint32_t keep);

/* What a link says of itself, once checked. */
struct mig_link_info {
	uint32_t index;
	bool base;
	uint64_t id, base_id, prev_id, taken_ns;
	uint64_t vram_pages, zero_pages, bytes;
};

/* Check a whole link in buf (every chunk, hash and total; its HEADER
 * against want: type and VRAM size equal, features a subset; want NULL:
 * any): 0 and *info, or -errno (EBADMSG, EINVAL, EPROTONOSUPPORT) with
 * one line in err naming the chunk.  Untrusted input. */
int mig_link_check(const uint8_t *buf, size_t len, const struct mig_ident *want,
		   struct mig_link_info *info, char *err, size_t errlen);
/* Apply a checked link onto VRAM of vram_size bytes and copy its STATE
 * into state (up to state_max bytes): its length, or -ENOSPC, or the
 * error of a write.  VRAM is the file fd when fd >= 0 (pwrite, and zero
 * pages punched: on a shmem file neither takes a page fault, and pages
 * that became zero go back to the host), else the memory at vram. */
int mig_link_apply(const uint8_t *buf, size_t len, uint8_t *vram, int fd, uint64_t vram_size,
		   void *state, size_t state_max);

/* Restore PREFIX's chain from dir: every link is checked before any is
 * applied; then vram (ident->vram_size bytes; NULL: check only) becomes
 * the chain's VRAM, and state gets the last link's blob (to_fd: into the
 * file vram_fd instead, pwrite, and zero pages punched).  Each page is
 * written once, from what it held straight to the newest copy the chain
 * has of it (zero where none has one), so whoever has the file mapped
 * never sees a page pass through an older link's bytes or through zero.
 * 0, or -errno with one line in err naming the bad file and chunk, or the
 * missing base or link. */
struct mig_chain_load {
	const struct mig_ident *ident;
	uint8_t *vram;
	bool to_fd;                  /* VRAM is the file vram_fd (see mig_link_apply) */
	int vram_fd;
	void *state;
	size_t state_max;
	/* out */
	uint32_t state_len, links, base_index, last_index;
	uint64_t last_id, last_taken_ns, bytes;
};
int mig_chain_load(const char *dir, const char *prefix, struct mig_chain_load *l, char *err,
		   size_t errlen);

/* Any stream written the same way (the VMM's VM checkpoints use it): a
 * file being written as dir/.name.tmp.PID through the ring and its writer
 * thread, made dir/name by mig_wfile_commit (fsync, rename, fsync of
 * dir) or removed by mig_wfile_abort.  Each frees f.  All return 0 or
 * -errno with a line in err; after an error the caller aborts. */
struct mig_wfile;
int mig_wfile_open(const char *dir, const char *name, struct mig_wfile **f, char *err,
		   size_t errlen);
/* Copies buf into the ring: the write itself happens on the writer
 * thread, so this returns as soon as the bytes are ours to reuse. */
int mig_wfile_write(struct mig_wfile *f, const void *buf, size_t len, char *err,
		    size_t errlen);
int mig_wfile_commit(struct mig_wfile *f, char *err, size_t errlen);
void mig_wfile_abort(struct mig_wfile *f);
/* For tests of what a crash leaves: the process kills itself (KILL) or
 * the disk is full (ENOSPC) once `at` bytes of the file are written, or
 * the process kills itself after the fsync, before the rename. */
enum mig_wfile_fault { MIG_WFILE_NONE, MIG_WFILE_KILL, MIG_WFILE_ENOSPC, MIG_WFILE_KILL_RENAME };
void mig_wfile_fault(struct mig_wfile *f, enum mig_wfile_fault kind, uint64_t at);

/* Reading a stream file the same way: a reader thread fills the ring from
 * fd's offset to its end while the caller takes the pieces in order.
 * mig_rfile_next gives the next piece (valid until the next call): its
 * length, 0 at the end of the file, or -errno. */
struct mig_rfile;
int mig_rfile_open(int fd, struct mig_rfile **f);
ssize_t mig_rfile_next(struct mig_rfile *f, const void **buf);
void mig_rfile_close(struct mig_rfile *f);

/*
 * DOC: hashing
 *
 * mig_hash is XXH3_64bits, bit for bit, on the fastest loop this CPU has
 * (AVX2 where there is one); mig_hash2 is XXH3-64 of a followed by b.
 * Every module that hashes what it moves (the VM stream, checkpoints,
 * protection) uses these.  mig_hash_loop names the loop: "avx2", "sse2".
 */
uint64_t mig_hash(const void *p, size_t len);
uint64_t mig_hash2(const void *a, size_t alen, const void *b, size_t blen);
/* Copy len bytes from from to buf + pre and return mig_hash(buf, pre +
 * len), buf's first pre bytes included: on AVX2 each byte is read once,
 * by a loop that stores what it hashes (a copy then a hash reads the
 * bytes twice).  from and buf + pre must not overlap. */
uint64_t mig_hash_copy(void *buf, size_t pre, const void *from, size_t len);
const char *mig_hash_loop(void);
/* The same over bytes that come in pieces: new (NULL without memory),
 * reset, update with each piece in order, digest (the hash of all of
 * them so far), free. */
struct mig_hasher;
struct mig_hasher *mig_hasher_new(void);
void mig_hasher_free(struct mig_hasher *h);
void mig_hasher_reset(struct mig_hasher *h);
void mig_hasher_update(struct mig_hasher *h, const void *p, size_t len);
uint64_t mig_hasher_digest(const struct mig_hasher *h);

#endif
