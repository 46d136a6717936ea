/* SPDX-License-Identifier: MIT */
/*
 * The daemon's control API: names of methods and JSON fields.
 *
 * DOC: the protocol
 *
 * A client connects to RUN_DIR/GPUP_CTL_SOCKET (a UNIX stream socket, mode
 * 0600; the daemon only answers its own uid or root), writes one JSON
 * object ended by a newline, reads one JSON object ended by a newline, and
 * the daemon closes the connection.  One request per connection keeps the
 * daemon's loop simple and a stuck client cheap.
 *
 *   request  {"method":"create","version":1,"gpu":"gpu0","type":"sim-4g-2"}
 *   success  {"ok":true, ...method-specific fields...}
 *   failure  {"ok":false,"error":"one line for a human","code":"ENOSPC"}
 *
 * "code" is the errno name of the failure, so scripts can branch on it
 * without parsing English.  New methods (sched, stats, migrate) add names
 * here; a daemon answers an unknown method with code "ENOSYS".
 */
#ifndef GPUP_UAPI_CTL_H
#define GPUP_UAPI_CTL_H

#define GPUP_CTL_VERSION 1
#define GPUP_CTL_SOCKET "gpup.sock"
#define GPUP_CTL_MAX_MSG (256u * 1024u)

/* methods */
#define GPUP_CTL_M_GPUS "gpus"
#define GPUP_CTL_M_TYPES "types"
#define GPUP_CTL_M_CREATE "create"
#define GPUP_CTL_M_DESTROY "destroy"
#define GPUP_CTL_M_LIST "list"
#define GPUP_CTL_M_SCHED "sched"	/* set a GPU's scheduling policy */
#define GPUP_CTL_M_STATS "stats"	/* scheduler accounting per engine */
#define GPUP_CTL_M_CHECKPOINT "checkpoint"	/* a partition into a file */
#define GPUP_CTL_M_RESTORE "restore"	/* a file into a partition */
#define GPUP_CTL_M_MOVE "move"		/* a running partition to another GPU */
#define GPUP_CTL_M_PROTECT "protect"	/* continuous protection of a partition */
#define GPUP_CTL_M_FAULT_INJECT "fault_inject"	/* fail a GPU; recover what is protected */
#define GPUP_CTL_M_STORAGE "storage"	/* where a checkpoint store can go */
/* Definitions, as mdevctl's define/undefine/start: define makes a
 * persistent definition ("type", ...; "start") without serving it, or
 * ("uuid" alone) persists a running transient partition; undefine
 * removes the definition only; start serves a defined partition. */
#define GPUP_CTL_M_DEFINE "define"
#define GPUP_CTL_M_UNDEFINE "undefine"
#define GPUP_CTL_M_START "start"
/* Tests only: fail a GPU's backend ops ("gpu", "op", "errno"); refused
 * with EPERM unless the daemon was started with GPUP_TEST_FAULTS=1. */
#define GPUP_CTL_M_FAULT "fault"

/* request and reply envelope */
#define GPUP_CTL_F_METHOD "method"
#define GPUP_CTL_F_VERSION "version"
#define GPUP_CTL_F_OK "ok"
#define GPUP_CTL_F_ERROR "error"
#define GPUP_CTL_F_CODE "code"

/* arrays in replies */
#define GPUP_CTL_F_GPUS "gpus"
#define GPUP_CTL_F_TYPES "types"
#define GPUP_CTL_F_PARTITIONS "partitions"
/* stats, per partition: client memory mapped for DMA and its limit, IO
 * page-table memory and its limit (bytes). */
#define GPUP_CTL_F_DMA_BYTES "dma_bytes"
#define GPUP_CTL_F_DMA_LIMIT "dma_limit"
#define GPUP_CTL_F_IOPT_BYTES "iopt_bytes"
#define GPUP_CTL_F_IOPT_LIMIT "iopt_limit"

/* a GPU */
#define GPUP_CTL_F_NAME "name"
#define GPUP_CTL_F_MODEL "model"
#define GPUP_CTL_F_BACKEND "backend"
#define GPUP_CTL_F_VRAM "vram"		/* bytes */
#define GPUP_CTL_F_VRAM_FREE "vram_free"
#define GPUP_CTL_F_LARGEST_FREE "largest_free"
#define GPUP_CTL_F_NCOMPUTE "compute_engines"
#define GPUP_CTL_F_NCOPY "copy_engines"
/* what holds VRAM: "4k" (4 KiB pages), "thp-2m" (2 MiB transparent huge
 * pages where the kernel has them) or "none"; for a GPU, what its next
 * partition of whole 2 MiB pages gets; for a partition, what it has */
#define GPUP_CTL_F_VRAM_BACKING "vram_backing"
#define GPUP_CTL_F_PCI "pci"		/* real devices found by inventory */
#define GPUP_CTL_F_DRIVER "driver"
#define GPUP_CTL_F_SRIOV_TOTALVFS "sriov_totalvfs"
#define GPUP_CTL_F_DRM_NODES "drm_nodes"
#define GPUP_CTL_F_HOST "host"		/* inventory of real devices */
#define GPUP_CTL_F_MANAGED "managed"	/* false: seen, not served */

/* a partition type */
#define GPUP_CTL_F_GPU "gpu"
#define GPUP_CTL_F_TYPE "type"
#define GPUP_CTL_F_FRACTION "fraction"	/* denominator: 1, 2, 4, 8, 16 */
#define GPUP_CTL_F_MAX_INSTANCES "max_instances"
#define GPUP_CTL_F_AVAILABLE "available_instances"
/* A type's "name" (for people), "description" and "device_api", as an
 * mdev type gives them in sysfs. */
#define GPUP_CTL_F_DESCRIPTION "description"
#define GPUP_CTL_F_DEVICE_API "device_api"

/* a partition */
#define GPUP_CTL_F_UUID "uuid"
#define GPUP_CTL_F_VRAM_OFFSET "vram_offset"
#define GPUP_CTL_F_SOCKET "socket"	/* its vfio-user socket path */
#define GPUP_CTL_F_CONNECTED "connected"
#define GPUP_CTL_F_FORCE "force"	/* destroy: even with a client attached */
/* list: null, or why a saved definition could not be restored (its GPU is
 * absent, its file is corrupt); its UUID stays reserved until destroy */
#define GPUP_CTL_F_UNAVAILABLE "unavailable"
/* "auto" (served when the daemon starts), "manual" (on `start`), or null
 * for a transient partition (no definition) */
#define GPUP_CTL_F_START "start"
#define GPUP_CTL_F_DEFINED "defined"	/* has a definition on disk */
#define GPUP_CTL_F_RUNNING "running"	/* served now */

/* scheduling (sched, stats) */
#define GPUP_CTL_F_POLICY "policy"	/* fifo, best-effort, equal-share, ... */
#define GPUP_CTL_F_SLICE_NS "slice_ns"	/* 0: the default */
#define GPUP_CTL_F_ENGINES "engines"
#define GPUP_CTL_F_HEALTH "health"	/* a GPU's: healthy, lost, hang */
#define GPUP_CTL_F_KIND "kind"		/* compute, copy */
#define GPUP_CTL_F_INDEX "index"
#define GPUP_CTL_F_SCHEDULER "scheduler"	/* tslice, other */
#define GPUP_CTL_F_BUSY_NS "busy_ns"
#define GPUP_CTL_F_CONTEXTS "contexts"
#define GPUP_CTL_F_WEIGHT "weight"	/* sched with "uuid": per partition */
#define GPUP_CTL_F_RESERVE "reserve"	/* fraction of the engine */
#define GPUP_CTL_F_CAP "cap"		/* fraction of the engine */
#define GPUP_CTL_F_CLASS "class"	/* normal, interactive */
#define GPUP_CTL_F_FPS_LIMIT "fps_limit"
#define GPUP_CTL_F_BUDGET_US "budget_us"	/* per frame period (1/fps_limit); 0 = none */
#define GPUP_CTL_F_QUEUE "queue"	/* stats: a context's vGPU queue */
#define GPUP_CTL_F_WATCHDOG_NS "watchdog_ns"	/* sched: 0 = off, absent = keep */
/* sched --gpu: true applies the settings without saving them in the state
 * directory (what `gpup bench` uses, so that a run leaves no trace on disk
 * and a restart brings back what was saved) */
#define GPUP_CTL_F_TRANSIENT "transient"

/* Migration: checkpoint and restore take "uuid" and "path" (absolute);
 * list, stats and their replies give the partition's migration state and
 * what its last save moved. */
#define GPUP_CTL_F_PATH "path"
#define GPUP_CTL_F_MIGRATION "migration"	/* RUNNING, PRE_COPY, STOP, ... */
#define GPUP_CTL_F_MIG_BYTES "mig_bytes"	/* stream bytes of the last save/load */
#define GPUP_CTL_F_MIG_ROUNDS "mig_rounds"	/* VRAM passes of the last save */
#define GPUP_CTL_F_MIG_PAGES "mig_pages"	/* pages sent with data */
#define GPUP_CTL_F_MIG_ZERO_PAGES "mig_zero_pages"	/* pages sent as zero runs */
#define GPUP_CTL_F_MIG_STOP_BYTES "mig_stop_bytes"	/* bytes sent while stopped */
#define GPUP_CTL_F_MS "ms"		/* how long the method took */

/* GPU generations and partition features: a GPU's "generation" ("gen1")
 * and "features" (the names of the built-in kernels it runs); a
 * partition's "compat" (the generation whose features it is limited to,
 * null for none: it exposes its GPU's) and "features" (what it exposes);
 * a type's "generation" (what a partition of it exposes without one). */
#define GPUP_CTL_F_GENERATION "generation"
#define GPUP_CTL_F_FEATURES "features"
#define GPUP_CTL_F_COMPAT "compat"
/* move takes "uuid" and "gpu" (the destination); its reply, and stats per
 * partition, give the last move: "from", "gpu", the guest-visible pause
 * and the whole move's time, and how many moves it has made. */
#define GPUP_CTL_F_FROM "from"
#define GPUP_CTL_F_MOVES "moves"
#define GPUP_CTL_F_MOVE_PAUSE_US "move_pause_us"
#define GPUP_CTL_F_MOVE_US "move_us"
#define GPUP_CTL_F_OP "op"		/* fault: vram_adopt, vram_map, engine, none */
#define GPUP_CTL_F_ERRNO "errno"

/* Failover (docs/MIGRATION.md, "Failover").  protect takes "uuid",
 * "every_ms" (0: stop protecting) and "store" (an absolute directory;
 * default STATE_DIR/protect); list and stats give each partition's
 * "protect_ms", "store", its links and the last one's figures.
 * fault_inject takes "gpu" and "kind" (lost, hang); its reply lists
 * "partitions", each with "result" (recovered, lost), the new "gpu",
 * "rto_us", "rpo_us" and "rpo_commands"; stats keep the last of these per
 * partition.  storage lists "places": the state directory's file system
 * and free space, and "nvme" namespaces with "nvme_note". */
#define GPUP_CTL_F_EVERY_MS "every_ms"
#define GPUP_CTL_F_PROTECT_MS "protect_ms"
#define GPUP_CTL_F_STORE "store"
#define GPUP_CTL_F_LINKS "links"
#define GPUP_CTL_F_BASES "bases"
#define GPUP_CTL_F_LINK_INDEX "link_index"
#define GPUP_CTL_F_LINK_AGE_MS "link_age_ms"
#define GPUP_CTL_F_LINK_PAUSE_US "link_pause_us"
#define GPUP_CTL_F_LINK_US "link_us"
#define GPUP_CTL_F_LINK_BYTES "link_bytes"
#define GPUP_CTL_F_LINK_PAGES "link_pages"
#define GPUP_CTL_F_PROTECT_ERROR "protect_error"
#define GPUP_CTL_F_KIND "kind"
#define GPUP_CTL_F_RESULT "result"
#define GPUP_CTL_F_RTO_US "rto_us"
#define GPUP_CTL_F_RPO_US "rpo_us"
#define GPUP_CTL_F_RPO_COMMANDS "rpo_commands"
#define GPUP_CTL_F_FAILOVER "failover"
#define GPUP_CTL_F_PLACES "places"
#define GPUP_CTL_F_FSTYPE "fstype"
#define GPUP_CTL_F_FREE "free"
#define GPUP_CTL_F_SIZE "size"
#define GPUP_CTL_F_NVME "nvme"
#define GPUP_CTL_F_NVME_NOTE "nvme_note"

#endif
