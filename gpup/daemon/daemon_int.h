/* SPDX-License-Identifier: MIT */
/*
 * Private to the daemon room (daemon*.c): its state, the epoll sources,
 * and the calls between the loop, partition serving and the control
 * methods.
 */
#ifndef GPUP_DAEMON_INT_H
#define GPUP_DAEMON_INT_H

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>

#include "gpup/daemon/daemon.h"
#include "gpup/pool/pool.h"
#include "gpup/vgpu/vgpu.h"

enum dmn_src_kind {
	DMN_SRC_CTL, DMN_SRC_CONN, DMN_SRC_SIGNAL, DMN_SRC_PART,
	DMN_SRC_METRICS, DMN_SRC_MCONN,   /* --metrics: listening, a scrape */
};

/* What an epoll event points at. */
struct dmn_src {
	enum dmn_src_kind kind;
	void *ptr;
};

/* Serving state of one partition (its gpup_partition's priv). */
struct dmn_part {
	struct dmn_src src;
	struct gpup_partition *part;
	struct iommu_domain *dom;
	struct vgpu *vgpu;
	struct vfu_server *vfu;
	int listen_fd;
	char path[108];           /* sun_path */
	struct vgpu_move_stats last_move;  /* of the last move that succeeded */
	uint64_t moves;
	struct dmn_protect *prot;     /* NULL: not protected (daemon_protect.c) */
	struct dmn_failover {         /* the last failure of its GPU (daemon_fault.c) */
		bool seen, recovered;
		char from[32], to[32], why[256];
		uint64_t rto_us, rpo_us, rpo_commands;
	} failover;
};

struct dmn_conn;
struct dmn_mconn;

struct gpup_daemon {
	struct gpup_daemon_cfg cfg;
	struct gpup_pool pool;
	int epfd;
	int ctl_fd, sig_fd;
	struct dmn_src ctl_src, sig_src;
	char ctl_path[108];
	char pid_path[PATH_MAX];
	struct dmn_conn *conns;   /* control connections being read */
	unsigned int nconns;
	int metrics_fd;           /* -1: no --metrics */
	struct dmn_src metrics_src;
	struct dmn_mconn *mconns; /* scrapes being served */
	unsigned int nmconns;
	bool stop;
	bool tty;                 /* stderr was a terminal at start */
};

/* daemon_log.c: where log lines go (see there).  open: path NULL or ""
 * keeps stderr (and notes whether it is the journal), otherwise appends
 * to path over stderr.  reopen: the same path again (SIGHUP), -ENOENT when
 * there is no file.  notify: one sd_notify datagram, printf style, to
 * $NOTIFY_SOCKET; 0 when there is none.  All 0 or -errno. */
int dmn_log_open(const char *path);
int dmn_log_reopen(void);
const char *dmn_log_path(void);
bool dmn_log_err_seen(void);      /* a LOG_ERR line was logged */
int dmn_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* daemon.c: socket helpers. */
int dmn_listen(const char *path, int *fd);
bool dmn_peer_allowed(int fd);

/* daemon_conn.c: control connections. */
void dmn_conn_accept(struct gpup_daemon *d);
void dmn_conn_ready(struct gpup_daemon *d, struct dmn_conn *c);
/* Close connections past their deadline; ms until the next one, or -1. */
int dmn_conn_expire(struct gpup_daemon *d);
void dmn_conn_close_all(struct gpup_daemon *d);

/* daemon_metrics.c: the --metrics endpoint.  open: listen (nothing
 * without --metrics), 0 or -errno logged; expire: like dmn_conn_expire. */
int dmn_metrics_open(struct gpup_daemon *d);
void dmn_metrics_accept(struct gpup_daemon *d);
void dmn_metrics_ready(struct gpup_daemon *d, struct dmn_mconn *c);
int dmn_metrics_expire(struct gpup_daemon *d);
void dmn_metrics_close(struct gpup_daemon *d);

/* daemon_part.c */
int dmn_part_start(struct gpup_daemon *d, struct gpup_partition *p);
void dmn_part_stop(struct gpup_daemon *d, struct gpup_partition *p);
void dmn_part_accept(struct gpup_daemon *d, struct dmn_part *dp);

/* daemon_jail.c: confinement (docs/SECURITY.md).  prepare builds the
 * seccomp filters before the first thread they are for starts; hook is
 * the thread_init of that kind of thread (NULL with the filters off);
 * drop chowns what the daemon made to --user and becomes it.  0 or
 * -errno, the reason logged. */
int dmn_jail_prepare(struct gpup_daemon *d);
typedef int (*dmn_thread_init_fn)(void);
dmn_thread_init_fn dmn_jail_hook(const struct gpup_daemon *d, enum gpup_jail_kind kind);
int dmn_jail_drop(struct gpup_daemon *d);

/* daemon_ctl.c: one request in, one reply out (never NULL). */
json_object *dmn_ctl_handle(struct gpup_daemon *d, json_object *req);

/* daemon_mig.c: the checkpoint and restore methods, and the migration
 * fields of a partition's listing (null when it is not served). */
json_object *dmn_ctl_checkpoint(struct gpup_daemon *d, json_object *req);
/* The served partition a request's "uuid" names: NULL and *fail set if
 * none. */
struct dmn_part *dmn_req_part(struct gpup_daemon *d, json_object *req, json_object **fail);
json_object *dmn_ctl_restore(struct gpup_daemon *d, json_object *req);
void dmn_mig_fields(struct dmn_part *dp, json_object *o);

/* daemon_move.c: the move method (a running partition to another GPU),
 * the last move's fields for stats, and the tests' fault method. */
json_object *dmn_ctl_move(struct gpup_daemon *d, json_object *req);
void dmn_move_fields(const struct dmn_part *dp, json_object *o);
json_object *dmn_ctl_fault(struct gpup_daemon *d, json_object *req);
/* The names of the features in mask, as a JSON array. */
json_object *dmn_features_json(uint32_t mask);

/* daemon_protect.c: the protect method and each protected partition's
 * thread.  resume_saved starts the protection a definition names (after
 * dmn_part_start); stop ends one (NULL or unprotected: nothing); hold
 * keeps the thread from taking a link (on) and lets it go again (off),
 * around a move or a recovery; last: the last link's figures and the
 * store, false when none was taken; fields: protection for listings. */
json_object *dmn_ctl_protect(struct gpup_daemon *d, json_object *req);
int dmn_protect_resume_saved(struct gpup_daemon *d, struct dmn_part *dp);
void dmn_protect_stop(struct dmn_part *dp);
void dmn_protect_hold(struct dmn_part *dp, bool on);
bool dmn_protect_last(struct dmn_part *dp, struct vgpu_protect_link *l, char *store,
		      size_t len);
void dmn_protect_fields(struct dmn_part *dp, json_object *o);

/* daemon_fault.c: the fault_inject method (a GPU fails, its protected
 * partitions are recovered elsewhere, the others are lost), the last
 * failover's fields for stats, and the storage method. */
json_object *dmn_ctl_fault_inject(struct gpup_daemon *d, json_object *req);
void dmn_failover_fields(const struct dmn_part *dp, json_object *o);
json_object *dmn_ctl_storage(struct gpup_daemon *d, json_object *req);

/* daemon_sched.c: the control-API methods "sched" and "stats", for the
 * method table: one reply object, never NULL. */
json_object *gpup_tsched_ctl_sched(struct gpup_pool *pool, json_object *req);
json_object *gpup_tsched_ctl_stats(struct gpup_pool *pool, json_object *req);
/* "sched" for one partition (request has "uuid"): its settings, saved in
 * its state file, then handed to its vgpu. */
struct vgpu;
json_object *gpup_tsched_ctl_part(struct gpup_pool *pool, struct gpup_partition *part,
				  struct vgpu *v, json_object *req);

#endif
