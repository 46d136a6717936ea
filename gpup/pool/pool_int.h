/* SPDX-License-Identifier: MIT */
/*
 * Private to the pool room: the file primitives pool_state.c (today's
 * layout) and state_upgrade.c (converting older ones) share, and the
 * names of the state directory's parts.
 */
#ifndef GPUP_POOL_INT_H
#define GPUP_POOL_INT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "gpup/pool/pool.h"

#define STATE_DEF_DIR "definitions"   /* definitions/GPU/UUID */
#define STATE_OLD_DIR "partitions"    /* format 1: partitions/UUID.json */
#define STATE_GPU_DIR "gpus"          /* gpus/NAME.json */
#define STATE_FORMAT_FILE "format"

/* snprintf that reports truncation as -ENAMETOOLONG. */
int st_path(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int st_fsync_dir(const char *path);
/* mkdir, and fsync of its parent when it was made: 0 or -errno. */
int st_mkdir(const char *path);
/* dir/name as text + "\n": written to dir/.name.tmp, fsynced, renamed,
 * dir fsynced.  0 or -errno. */
int st_write_atomic(const char *dir, const char *name, const char *text);
/* A regular file of at most GPUP_STATE_FILE_MAX bytes holding a JSON
 * object: 0 and *out to put, or -errno with the reason in err (-ENOENT:
 * no such file). */
int st_load_json(const char *path, json_object **out, char *err, size_t errlen);
/* A GPU's name as it may stand as a directory: [A-Za-z0-9_.-], not
 * starting with '.', shorter than a pool GPU's name field. */
bool st_gpu_name_ok(const char *name);

#endif
