/*
 * What runs in the processes that become a container's init (the child side of create, finish_create and
 * start). Stage 1, forked by the agent, joins and creates the namespaces (the user namespace first created,
 * then the others, so that they belong to it) and clones stage 2 as a child of the agent (CLONE_PARENT);
 * stage 2 is the init: mounts, waits at the hooks point, pivots, waits for start, execs.
 */
#pragma once
#include "spec.h"
#include "stdio.h"

struct init_args {
	const struct ctrspec *spec;
	int sync_fd; /* the child's end of the sync channel */
	struct stdio_plan stdio;
	int console_fd;	     /* connected console socket, or -1 */
	const struct cgroups *cgroups; /* the container's, or NULL */
	bool in_unified;	       /* started in the container's cgroup2 directory (caller_reaps_fork) */
	const struct seccomp_filter *seccomp; /* the container's, or NULL */
};

_Noreturn void container_init_stage1(const struct init_args *a);
