/* SPDX-License-Identifier: MIT */
/*
 * The pool room (gpup/pool/): the GPUs a daemon owns, the partition types
 * each offers and the partitions cut from them (pool.c), with their
 * definitions persisted in the state directory (pool_state.c, in
 * mdevctl's layout; GPUs' settings in gpu_state.c; both through the
 * atomic file primitives of state_file.c) and placed in VRAM by a buddy
 * allocator (placement.c); the state directory's lock and leftovers
 * (state_dir.c) and the upgrade of an older release's layout
 * (state_upgrade.c); and the inventory of the host's real GPUs
 * (inventory.c).  Pure bookkeeping: no sockets, no device model; the
 * daemon attaches its serving state to each GPU and partition through the
 * `priv` pointers.
 *
 * DOC: partition types
 *
 * Like vendor vGPU profiles, a type is a fixed fraction of one GPU's VRAM:
 * 1, 1/2, 1/4, 1/8 or 1/16.  Its name is BACKEND-SIZE-N, where SIZE is the
 * partition's VRAM ("4g", "512m") and N how many fit on an empty GPU:
 * on an 8 GiB sim GPU the types are sim-8g-1, sim-4g-2, sim-2g-4, sim-1g-8
 * and sim-512m-16.  GPUs of the same backend and size share type names.
 * available_instances is how many more fit right now, given placement.
 *
 * DOC: persistence
 *
 * Definitions follow mdevctl's layout (/etc/mdevctl.d/PARENT/UUID), so
 * that an mdevctl user reads them at sight: one file per partition,
 * STATE/definitions/GPU/UUID, its GPU being the directory, holding
 * {"mdev_type": TYPE, "start": "auto"|"manual", "attrs": [{"name":
 * "value"}, ...]}.  gpup's own settings are attrs: vram_offset and
 * vram_size (its slot), revision (how many times the file was written),
 * compat, and the scheduler's below.  Attrs of other names are left
 * alone.  "start": "auto" is served when the daemon starts; "manual" is
 * kept (its slot reserved) until `gpup start UUID`.  A partition without
 * a definition (`gpup undefine` of a running one) is transient: nothing
 * on disk, gone when the daemon stops.  STATE/format holds the layout's
 * version (GPUP_STATE_FORMAT).
 *
 * Written to a temporary name (.UUID.tmp), fsynced, renamed, directory
 * fsynced; removed (and the directory fsynced) on destroy.  On start the
 * daemon restores every file; one that is corrupt or no longer fits (its
 * GPU absent, its slot taken) is skipped with a log line and left on disk
 * for a human to look at.  Its UUID stays reserved: `create --uuid` will
 * not overwrite the file, and `gpup list` shows it as unavailable with
 * the reason, until `gpup destroy` removes it or a restart restores it.
 * Two files of one UUID (a move interrupted between writing the new
 * place and removing the old) resolve to the higher revision; the other
 * is removed.
 *
 * Only regular files are read: a symlink, a FIFO or a device in the state
 * directory is skipped with a log line (never followed or opened
 * blocking), and so is a file over GPUP_STATE_FILE_MAX.  Temporaries a
 * crash left behind are removed at start.  One daemon at a time owns a
 * state directory: it holds an flock on STATE/gpup.lock, which also names
 * its pid, from before it reads anything until it exits.
 *
 * DOC: upgrading the state directory
 *
 * Releases before format 2 kept STATE/partitions/UUID.json holding
 * {"version":1,"uuid","parent","type","compat","vram_offset","vram_size",
 * "attrs"}.  On start (gpup_pool_state_upgrade) each such file is
 * written as its definition, atomically, and only then removed, so every
 * partition is defined in one layout or both (then the same) at every
 * instant: a crash leaves a directory the next start finishes.  The
 * format marker is written last.  A file that cannot be converted stays
 * where it is, logged, and is listed as unavailable.
 *
 * A partition's scheduler settings (`gpup sched --partition`) are attrs,
 * mdevctl's list of {"name": "value"} strings: sched_weight,
 * sched_reserve_ppm, sched_cap_ppm, sched_class, sched_fps_limit,
 * sched_budget_us (files written before budgets existed have none); none
 * when it has never been given any.  Scheduler attrs whose values do not
 * parse cost the partition its settings (defaults, one log line), not
 * its definition; attrs that are not {"name": "string"} entries, or a
 * placing attr missing, twice or malformed, cost the definition.
 * A GPU's policy, slice and watchdog (`gpup sched --gpu`) live in
 * STATE/gpus/NAME.json, written the same way; the daemon reads them when
 * it brings the GPU up.
 *
 * A partition created with a compatibility mask (`gpup create --compat
 * gen1`) keeps the generation's name as "compat"; files without one
 * expose whatever their GPU has.  A compat that names no generation this
 * daemon knows, or one its GPU cannot honour, makes the definition
 * unavailable, with the reason.
 *
 * DOC: moving a partition
 *
 * A move to another GPU (the daemon drives the device, docs/MIGRATION.md)
 * goes through the pool in three steps: gpup_pool_move_begin checks the
 * destination (its type, its features against what the partition
 * exposes, room) and reserves the slot before anything stops; then
 * either gpup_pool_move_commit frees the source slot and records the new
 * place, or gpup_pool_move_abort frees the reserved one.  The definition
 * is written under its new GPU (gpup_pool_state_write_at, revision + 1)
 * in between; commit removes the old file, abort the new one.
 *
 * Functions return 0 or -errno; those taking `err` also write one line for
 * a human there on failure.
 */
#ifndef GPUP_POOL_H
#define GPUP_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scheduler/sched.h"

/*
 * Placement of partitions in one GPU's VRAM (placement.c): a buddy
 * allocator over naturally aligned slots.
 *
 * DOC: why a buddy
 *
 * Partition sizes are the GPU's VRAM divided by a power of two, so every
 * slot can be naturally aligned: a 1/4 partition starts at a multiple of
 * 1/4 of VRAM.  Aligned slots of one size never straddle a larger slot, so
 * a free 1/2 can only be lost by putting small partitions into it.  The
 * allocator therefore takes the free slot that lies in the smallest fully
 * free aligned block (the classic buddy rule: split the smallest block
 * that fits), lowest offset on ties.  Small partitions gather in blocks
 * that are already split and large free blocks stay whole.
 *
 * VRAM is tracked in units (VRAM / nunits, nunits a power of two up to
 * 64), one bit each.  Pure data: no locking, no I/O.
 */

#define GPUP_BUDDY_MAX_UNITS 64u

struct gpup_buddy {
	uint64_t size;      /* bytes managed */
	uint64_t unit;      /* bytes per unit */
	unsigned int nunits;
	uint64_t used;      /* bit i = unit i allocated */
};

/* size must be a multiple of nunits units; nunits a power of two in
 * [1, 64].  0 or -EINVAL. */
int gpup_buddy_init(struct gpup_buddy *b, uint64_t size, unsigned int nunits);

/* Allocate a slot of `units` units (a power of two): 0 and *unit_off, or
 * -EINVAL (bad size), -ENOSPC (no aligned free slot). */
int gpup_buddy_alloc(struct gpup_buddy *b, unsigned int units, unsigned int *unit_off);

/* Take the exact slot [unit_off, +units) (restoring saved partitions):
 * -EINVAL if misaligned or out of range, -EBUSY if any unit is taken. */
int gpup_buddy_reserve(struct gpup_buddy *b, unsigned int unit_off, unsigned int units);

/* Free a slot given by alloc/reserve: -EINVAL if it was not fully used. */
int gpup_buddy_free(struct gpup_buddy *b, unsigned int unit_off, unsigned int units);

/* How many slots of `units` could be allocated right now (aligned slots of
 * one size are disjoint, so this is exact). */
unsigned int gpup_buddy_available(const struct gpup_buddy *b, unsigned int units);

/* The largest allocatable slot, in units (0 when full). */
unsigned int gpup_buddy_largest_free(const struct gpup_buddy *b);

unsigned int gpup_buddy_free_units(const struct gpup_buddy *b);

/* ---- the pool (pool.c) ---- */
#define GPUP_POOL_MAX_GPUS 16u
#define GPUP_UUID_STRLEN 36u
#define GPUP_POOL_MAX_DENOM 16u   /* the smallest type is 1/16 of a GPU */
#define GPUP_POOL_NFRACTIONS 5u   /* 1, 2, 4, 8, 16 */
#define GPUP_TYPE_NAME_MAX 32u
#define GPUP_POOL_ERR_MAX 256u
/* A state file is a few hundred bytes; anything past this is not ours. */
#define GPUP_STATE_FILE_MAX (256u * 1024u)
/* Unrestorable definitions remembered for `gpup list`; past this many the
 * rest are only logged (their files still keep their UUIDs reserved). */
#define GPUP_POOL_MAX_UNAVAIL 256u
/* The state directory's layout (STATE/format); see DOC: persistence. */
#define GPUP_STATE_FORMAT 2

/* How a GPU's engines are shared, as last applied and saved. */
struct gpup_gpu_sched {
	enum sched_policy policy;
	uint64_t slice_ns;        /* 0: the scheduler's default */
	uint64_t watchdog_ns;     /* 0: off */
};

struct gpup_pool_gpu {
	char name[32];            /* "gpu0" */
	char model[64];
	char backend[16];         /* "sim" */
	uint64_t vram_size;
	unsigned int ncompute, ncopy;
	struct gpup_buddy buddy;  /* units of vram_size / GPUP_POOL_MAX_DENOM */
	char gen[16];             /* its generation: "gen2" unless set after add */
	uint32_t kernels;         /* its features: the built-in kernels it runs */
	struct gpup_gpu_sched sched;
	void *priv;               /* the daemon's struct gpup_gpu */
};

struct gpup_type {
	char name[GPUP_TYPE_NAME_MAX];
	unsigned int gpu;         /* pool index */
	unsigned int fraction;    /* denominator */
	uint64_t vram_size;
	unsigned int max_instances, available;
};

struct gpup_partition {
	char uuid[GPUP_UUID_STRLEN + 1];
	char type[GPUP_TYPE_NAME_MAX];
	unsigned int gpu;
	unsigned int fraction;
	uint64_t vram_offset, vram_size;
	struct sched_ctx_cfg sched;  /* valid when sched_set; priv unused */
	bool sched_set;              /* false: scheduler defaults */
	bool defined;                /* false: transient, nothing on disk */
	bool start_auto;             /* "start": "auto" */
	uint64_t revision;           /* of its definition file */
	char compat[16];             /* a generation's name, "" for none */
	uint32_t compat_kernels;     /* its features, when compat is set */
	/* Continuous protection (docs/MIGRATION.md, "Failover"): a link
	 * every protect_ms into protect_store; 0 for none. */
	uint32_t protect_ms;
	char protect_store[256];
	void *priv;               /* the daemon's serving state */
	struct gpup_partition *next;
};

/* A definition restore skipped: what its file says, as far as it could be
 * read ("" and 0 where not), and why it is not served. */
struct gpup_unavail {
	char uuid[GPUP_UUID_STRLEN + 1];
	char gpu[32];
	char type[GPUP_TYPE_NAME_MAX];
	uint64_t vram_offset, vram_size;
	char why[GPUP_POOL_ERR_MAX];
	struct gpup_unavail *next;
};

struct gpup_pool {
	struct gpup_pool_gpu gpus[GPUP_POOL_MAX_GPUS];
	unsigned int ngpus;
	struct gpup_partition *parts;   /* ordered by creation */
	struct gpup_unavail *unavail;   /* in file name order */
	unsigned int nunavail;
	char *state_dir;                /* NULL: nothing persisted */
	int lock_fd;                    /* STATE/gpup.lock, -1 when not held */
	/* One line per event (restore skips); can be NULL. */
	void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
	/* Tests: called before each change the upgrade makes on disk, to
	 * crash there; NULL otherwise. */
	void (*crash_point)(const char *what);
};

void gpup_pool_init(struct gpup_pool *p, const char *state_dir);
/* Frees the partition records (not their priv) and the GPU list, and
 * releases the state directory's lock. */
void gpup_pool_fini(struct gpup_pool *p);

/* vram_size must be a multiple of GPUP_POOL_MAX_DENOM * 4 KiB.  Returns
 * the pool index or -errno (-ENOSPC when full, -EINVAL). */
int gpup_pool_add_gpu(struct gpup_pool *p, const char *name, const char *model,
		      const char *backend, uint64_t vram_size, unsigned int ncompute,
		      unsigned int ncopy, void *priv);

/* "gpu1" or "1": the index, or -ENODEV. */
int gpup_pool_find_gpu(const struct gpup_pool *p, const char *id);

/* The types of GPU `gpu`, largest first, with availability now: fills up
 * to GPUP_POOL_NFRACTIONS entries and returns how many. */
unsigned int gpup_pool_types(const struct gpup_pool *p, unsigned int gpu,
			     struct gpup_type *out);

/* Type `name` on GPU `gpu`: 0, or -ENOENT if that GPU has no such type. */
int gpup_pool_find_type(const struct gpup_pool *p, unsigned int gpu, const char *name,
			struct gpup_type *out);

/*
 * Create a partition of type `type` on GPU `gpu_id` (NULL: the fullest GPU
 * that has room, to keep large slots free elsewhere) with `uuid` (NULL: a
 * new random one).  Persists it before returning.  -ENODEV unknown GPU,
 * -ENOENT unknown type, -EINVAL bad UUID, -EEXIST UUID in use (by a
 * partition, or by a definition on disk that restore skipped), -ENOSPC no
 * room, or an I/O error; nothing changes on failure.
 */
int gpup_pool_create(struct gpup_pool *p, const char *gpu_id, const char *type,
		     const char *uuid, struct gpup_partition **out, char *err, size_t errlen);
/* The same, exposing only generation `compat`'s features (NULL: its GPU's
 * whole set); without gpu_id only GPUs that have them are considered.
 * -EINVAL for a compat that is no generation, -EOPNOTSUPP for a GPU
 * lacking one of its features (err names it). */
int gpup_pool_create_compat(struct gpup_pool *p, const char *gpu_id, const char *type,
			    const char *uuid, const char *compat, struct gpup_partition **out,
			    char *err, size_t errlen);

/* What gpup_pool_define makes: a partition like create's, persisted
 * (`gpup define`, `gpup create`) or transient, served at daemon start
 * (start_auto) or on `gpup start`. */
struct gpup_define {
	const char *gpu, *type, *uuid, *compat;  /* as for create_compat */
	bool persist, start_auto;
};

/* The same errors as gpup_pool_create_compat. */
int gpup_pool_define(struct gpup_pool *p, const struct gpup_define *def,
		     struct gpup_partition **out, char *err, size_t errlen);
/* Give a transient partition a definition (or change a defined one's
 * start): 0, or an I/O error with the partition as it was. */
int gpup_pool_persist(struct gpup_pool *p, struct gpup_partition *part, bool start_auto,
		      char *err, size_t errlen);
/* Remove the definition only: the partition, if the caller keeps it,
 * becomes transient; an unavailable definition goes with its record.
 * -ENOENT if uuid has no definition. */
int gpup_pool_undefine(struct gpup_pool *p, const char *uuid, char *err, size_t errlen);

/* The features a partition exposes: its compat's, or its GPU's. */
uint32_t gpup_pool_part_kernels(const struct gpup_pool *p, const struct gpup_partition *part);

/* Moving a partition (see DOC: moving a partition).  begin: the
 * destination GPU's index and the slot reserved there, or -ENODEV (no
 * such GPU), -EINVAL (its own GPU), -ENOENT (no type of that name and
 * size there), -EOPNOTSUPP (a feature it exposes is missing there: err
 * names it), -ENOSPC (no room); nothing changes on failure. */
int gpup_pool_move_begin(struct gpup_pool *p, const struct gpup_partition *part,
			 const char *gpu_id, unsigned int *gpu, uint64_t *vram_offset, char *err,
			 size_t errlen);
/* These two log (p->log) a file they cannot remove: the next start keeps
 * the higher revision. */
void gpup_pool_move_commit(struct gpup_pool *p, struct gpup_partition *part, unsigned int gpu,
			   uint64_t vram_offset);
void gpup_pool_move_abort(struct gpup_pool *p, const struct gpup_partition *part,
			  unsigned int gpu, uint64_t vram_offset);

/* Remove a partition: its state file, its slot, its record.  The caller has
 * stopped serving it.  An unavailable definition (restore skipped it) is
 * removed the same way: its file and its record.  -ENOENT if unknown. */
int gpup_pool_destroy(struct gpup_pool *p, const char *uuid, char *err, size_t errlen);

struct gpup_partition *gpup_pool_find(const struct gpup_pool *p, const char *uuid);
const struct gpup_unavail *gpup_pool_find_unavail(const struct gpup_pool *p,
						  const char *uuid);

/* Restore every partition file of the state directory; returns how many
 * came back.  Bad files are logged and skipped; those named by a UUID are
 * remembered as unavailable (pool->unavail). */
int gpup_pool_restore(struct gpup_pool *p);

/* A UUID in canonical lower-case form (36 chars, 8-4-4-4-12 hex): 0 and the
 * normalised form in out[37], or -EINVAL. */
int gpup_uuid_parse(const char *in, char *out);
/* A new random (version 4) UUID. */
int gpup_uuid_generate(char *out);

/* ---- the state directory (state_dir.c) ---- */
/* Take the state directory (which must exist) for this process: an
 * exclusive flock on STATE/gpup.lock, held until gpup_pool_fini, with our
 * pid written in it.  0; -EBUSY when another process holds it, with its
 * pid (when it wrote one) in err; or another -errno. */
int gpup_pool_state_lock(struct gpup_pool *p, char *err, size_t errlen);
/* Remove the temporaries an interrupted write left (.UUID.tmp under
 * definitions/GPU/, .NAME.json.tmp under gpus/, .UUID.json.tmp under
 * partitions/, .format.tmp; nothing else), one log line each: how many
 * were removed. */
int gpup_pool_state_clean(struct gpup_pool *p);
/* Bring a state directory of an older layout to GPUP_STATE_FORMAT (see
 * DOC: upgrading the state directory): 0, or -EPROTONOSUPPORT for a
 * newer format, or an I/O error, with err saying which. */
int gpup_pool_state_upgrade(struct gpup_pool *p, char *err, size_t errlen);

/* ---- persistence (pool_state.c) ---- */
/* Save a defined partition's definition (revision + 1); nothing for a
 * transient one. */
int gpup_pool_state_write(const struct gpup_pool *p, struct gpup_partition *part);
/* Its definition as if it lived at (gpu, vram_offset), revision + 1: a
 * move's new place, written before the device stops. */
int gpup_pool_state_write_at(const struct gpup_pool *p, const struct gpup_partition *part,
			     unsigned int gpu, uint64_t vram_offset);
/* Every definition file of uuid (under any GPU, or left in the old
 * layout). */
int gpup_pool_state_remove(const struct gpup_pool *p, const char *uuid);
/* The one under GPU `gpu` only. */
int gpup_pool_state_remove_at(const struct gpup_pool *p, unsigned int gpu, const char *uuid);
/* Whether a definition file of uuid exists (as anything, even a link). */
bool gpup_pool_state_exists(const struct gpup_pool *p, const char *uuid);
/* Put back a partition read from its state file (restore): takes `part`
 * on success; -EEXIST, -ENOENT (type), -EINVAL, -EBUSY (slot taken). */
int gpup_pool_adopt(struct gpup_pool *p, struct gpup_partition *part, char *err,
		    size_t errlen);
/* Give a partition scheduler settings and save them: 0, -EINVAL (cfg out
 * of range) or an I/O error, with the old settings kept on failure. */
int gpup_pool_set_sched(const struct gpup_pool *p, struct gpup_partition *part,
			const struct sched_ctx_cfg *cfg);
/* Protect a partition every ms into store (ms 0: no longer) and save
 * it: 0, -EINVAL (store not absolute or too long), or an I/O error with
 * the old settings kept. */
int gpup_pool_set_protect(const struct gpup_pool *p, struct gpup_partition *part, uint32_t ms,
			  const char *store);
/* Save GPU `gpu`'s scheduler settings and record them in the pool: 0, or
 * an I/O error with nothing changed. */
int gpup_pool_gpu_sched_save(struct gpup_pool *p, unsigned int gpu,
			     const struct gpup_gpu_sched *s);
/* The saved settings of the GPU named `name`: 0, -ENOENT if none are saved,
 * -EINVAL if its file is corrupt or of another version (logged once). */
int gpup_pool_gpu_sched_load(const struct gpup_pool *p, const char *name,
			     struct gpup_gpu_sched *out);

/* ---- the host's real GPUs (inventory.c) ---- */
/* Display-class PCI functions with their SR-IOV, driver and DRM nodes, as
 * a JSON array for `gpup gpus` (never NULL). */
struct json_object;
struct json_object *gpup_inventory_json(void);

#endif
