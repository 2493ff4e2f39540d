/*
 * The warm pool (docs/warm-pool.md) as the launchers use it: an idle, pre-started runbox process of the right kind
 * and build is handed the work over its socket in the pool directory (the work's records, and its fds with
 * SCM_RIGHTS), and the pool is topped up again in the background. Whatever fails here leaves the work to a fresh
 * Node start, as without a pool.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "facts.h"
#include "util.h"

#define POOL_BUILD_ID_LENGTH 16

struct pool {
	enum pool_kind kind;
	char install[4096]; /* the install's directory, which holds bin/ and dist/ */
	char dir[4096];	    /* the pool directory: this user's, mode 0700 */
	char build[POOL_BUILD_ID_LENGTH + 1]; /* the build id of the kind's code as installed now */
	int size;
	int idle_seconds;
	int vms; /* a shim pool's: shimvm members to keep for pods' sandboxes (the runtime config's pool.vms), else 0 */
};

/*
 * The pool of kind for the install whose bin/ holds entry (symlinks resolved), sized by ENV_POOL_SIZE and
 * ENV_POOL_IDLE_SECONDS (a value that is not a decimal in range leaves the default). False when it cannot be used:
 * the kind's code is missing, or the pool directory is not a directory of this user's with mode 0700 (it is made
 * when missing). A size of 0 opens a pool that is neither taken from nor refilled.
 */
bool pool_open(struct pool *pool, enum pool_kind kind, const char *entry);

/* A configured size (0 to POOL_MAX_SIZE) or idle time (1 to POOL_MAX_IDLE_SECONDS): false when out of range. */
bool pool_valid_size(long long size);
bool pool_valid_idle(long long seconds);

/*
 * Adds to records what every handoff brings of the work's process: its arguments (args, NULL-terminated), this
 * process's environment, cwd and umask.
 */
void pool_add_process_records(struct buf *records, const char *const *args, const char *cwd);

/*
 * Hands the work to an idle pooled process of this build: the records (frame.h's record_add) after their length
 * (4 bytes, big-endian), and nfds fds (0, 1 and 2 first, then the kind's own). Candidates are tried in turn until
 * one answers POOL_TAKEN within POOL_HANDOFF_TIMEOUT_MS. Returns the connection to it (close-on-exec) and its pid
 * in *pid, or -1 when none took the work (dead members' sockets are removed on the way) or when this process's
 * environment sets one of POOL_LOAD_TIME_ENV.
 */
int pool_take(const struct pool *pool, const struct buf *records, const int *fds, size_t nfds, pid_t *pid);

/*
 * Tops the pool up to its size in the background at the lowest priority, and ends members of other builds:
 * returns at once, having forked a process that holds none of this one's fds and is in a session of its own.
 */
void pool_refill(const struct pool *pool);
