/*
 * A new process's fds 0, 1, 2: the agent's own inherited stdio (given once, to the first process that asks),
 * pipes the agent relays, or /dev/null.
 */
#pragma once
#include <stdbool.h>

#include "spec.h"

struct stdio_plan {
	int child[3];	/* what becomes the process's 0, 1, 2 */
	int in, out, err; /* the agent's ends of the pipes (stdio=stream), -1 otherwise */
	bool inherited;
};

/* At start-up, before anything else opens an fd: keeps fds 0, 1, 2 aside for stdio=inherit. */
void stdio_save_inherited(void);
/* Makes the kept fd 0, 1 or 2 /dev/null (a clone of a template VM whose caller did not give that stream). */
int stdio_make_inherited_null(int fd);
/* The caller's stderr while the agent still holds it (for start-up errors), else -1. */
int stdio_saved_stderr(void);
/* -1 with errno on failure. A process with a terminal gets /dev/null until its pty takes over. */
int stdio_prepare(const struct procspec *p, struct stdio_plan *s);
/* After the fork: closes the child's ends in the agent (and the inherited fds, now the child's alone). */
void stdio_spawned(struct stdio_plan *s);
/* The fork did not happen: closes everything, keeps the inherited fds for the next process. */
void stdio_cancel(struct stdio_plan *s);
/* In the child: installs child[] as 0, 1, 2. */
void stdio_install(const struct stdio_plan *s);
