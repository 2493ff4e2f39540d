#define _GNU_SOURCE
#include "caller_reaps.h"

#include <linux/sched.h>
#include <sched.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop.h"
#include "proc.h"
#include "util.h"

#define UNKNOWN_EXIT_STATUS 255

static int enabled = -1;
static bool adopted_child;

bool caller_reaps_enabled(void)
{
	if (enabled < 0) {
		const char *value = getenv("RUNBOX_CALLER_REAPS");
		enabled = value && !strcmp(value, "1");
		/* Not for the hooks and containers the agent runs. */
		unsetenv("RUNBOX_CALLER_REAPS");
	}
	return enabled;
}

pid_t caller_reaps_fork(bool adopted, int cgroup_fd, bool *in_cgroup)
{
	pid_t pid = -1;
	*in_cgroup = false;
	if (cgroup_fd >= 0) {
		/* Started in its cgroup, the child is never moved there: a move into a cgroup2 cgroup takes the kernel's
		 * global threadgroup lock, whose first taking waits for an RCU grace period (5-15 ms). */
		struct clone_args args = { .flags = CLONE_INTO_CGROUP | (adopted ? CLONE_PARENT : 0),
					   .exit_signal = SIGCHLD,
					   .cgroup = (uint64_t)cgroup_fd };
		pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
		*in_cgroup = pid >= 0;
	}
	if (pid < 0)
		pid = adopted ? (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0) : fork();
	if (pid == 0 && adopted)
		adopted_child = true;
	return pid;
}

bool caller_reaps_child(void)
{
	return adopted_child;
}

struct watched {
	pid_t pid;
	int pidfd;
	struct watch *watch;
};

static void on_exit_ready(void *ctx, short revents)
{
	(void)revents;
	struct watched *w = ctx;
	loop_unwatch(w->watch);
	close(w->pidfd);
	reaper_exited(w->pid, W_EXITCODE(UNKNOWN_EXIT_STATUS, 0));
	loop_release_later(free, w);
}

int caller_reaps_watch(pid_t pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -1;
	struct watched *w = xmalloc(sizeof *w);
	*w = (struct watched){ pid, pidfd, NULL };
	w->watch = loop_watch(pidfd, NULL, on_exit_ready, w);
	return 0;
}
