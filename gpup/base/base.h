/* SPDX-License-Identifier: MIT */
/*
 * The base room (gpup/base/): the little that every room of gpup/ shares
 * and none of them owns.  It sits below all the others and uses nothing
 * but libc: the exit statuses of gpup's commands, the one-line error
 * they print, sizes read and written with K/M/G/T, and mkdir -p.
 *
 * Exit statuses, for every subcommand:
 *   0  success
 *   1  the operation failed at run time (I/O, the daemon went away...)
 *   2  the request was wrong: bad flag, unknown name, no capacity, in use
 */
#ifndef GPUP_BASE_H
#define GPUP_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GPUP_EXIT_OK 0
#define GPUP_EXIT_FAIL 1
#define GPUP_EXIT_USAGE 2

/* Print "gpup CMD: message" to stderr, printf style, with a newline; after
 * gpup_err_json(true) (a command given --json), one line of JSON instead:
 * {"command": CMD, "error": message, "code": null}.  gpup_errc gives the
 * code, an errno name ("ENOENT") where one is known. */
void gpup_err(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void gpup_errc(const char *cmd, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void gpup_err_json(bool on);

/* printf into err (len bytes) when err is given: how a function that
 * fails tells its caller, in one line, what was wrong. */
void gpup_say(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "8G", "512M", "4096", "64k": bytes.  -1 and errno = EINVAL on junk,
 * ERANGE on overflow.  Suffixes K, M, G, T (powers of 1024), any case,
 * optional trailing "iB" or "B". */
int gpup_parse_size(const char *s, uint64_t *out);

/* Format bytes as "8 GiB", "512 MiB", "4 KiB" or "123 B" when not a whole
 * multiple.  Returns buf. */
char *gpup_format_size(uint64_t bytes, char *buf, size_t len);

/* mkdir -p with mode for the last component; 0 or -errno. */
int gpup_mkdir_p(const char *path, unsigned int mode);

#endif
