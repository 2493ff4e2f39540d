#define _GNU_SOURCE
#include "container_init.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caller_reaps.h"
#include "cgroups.h"
#include "child.h"
#include "hooks.h"
#include "launch.h"
#include "pty.h"
#include "rootfs.h"
#include "sync.h"
#include "util.h"

static _Noreturn void stage2(const struct init_args *a)
{
	const struct ctrspec *s = a->spec;
	const struct procspec *p = &s->proc;
	setsid();
	if (!caller_reaps_child())
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (p->has_oom_score_adj) {
		char text[16];
		snprintf(text, sizeof text, "%d", p->oom_score_adj);
		if (write_file("/proc/self/oom_score_adj", text) < 0)
			child_fail(errno, "oom_score_adj");
	}
	rootfs_prepare(s);
	if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
		child_fail(errno, "sethostname");
	if (s->domainname && setdomainname(s->domainname, strlen(s->domainname)) < 0)
		child_fail(errno, "setdomainname");

	child_send(SYNC_HOOKS, NULL, 0, -1);
	size_t len;
	char *state = child_expect(SYNC_CONTINUE, &len);
	hooks_run(s, HOOK_CREATE_CONTAINER, state, len);
	free(state);
	if (ctrspec_own_mntns(s))
		rootfs_pivot(s->rootfs);
	else
		rootfs_chroot(s->rootfs);
	rootfs_finish(s);
	launch_chdir(p);
	launch_rlimits(p);
	if (s->readonly_rootfs)
		rootfs_make_readonly();
	int master = p->terminal ? pty_setup_process(p, a->console_fd) : -1;
	char *path = launch_lookup(p);
	child_send(SYNC_CREATED, NULL, 0, master);
	if (master >= 0)
		close(master);
	launch_prefetch(path);

	state = child_expect(SYNC_START, &len);
	hooks_run(s, HOOK_START_CONTAINER, state, len);
	free(state);
	launch_exec(p, path, a->sync_fd, a->seccomp);
}

_Noreturn void container_init_stage1(const struct init_args *a)
{
	const struct ctrspec *s = a->spec;
	child_init(a->sync_fd, s->id);
	reset_signals();
	stdio_install(&a->stdio);
	int keep[] = { 0, 1, 2, a->sync_fd, a->console_fd };
	close_fds_except(keep, (int)ARRAY_LEN(keep));
	const char *cgroup;
	if (cgroups_join(a->cgroups, a->in_unified, &cgroup) < 0)
		child_fail(errno, "join the cgroup %s", cgroup);

	/* Open every namespace to join first: the paths are the agent's, before any setns changes the view. */
	int fds[NS_COUNT];
	for (int i = 0; i < NS_COUNT; i++) {
		fds[i] = s->ns_path[i] ? open(s->ns_path[i], O_RDONLY | O_CLOEXEC) : -1;
		if (s->ns_path[i] && fds[i] < 0)
			child_fail(errno, "open the %s namespace %s", ns_info[i].name, s->ns_path[i]);
	}
	/* As host root every setns is allowed; after joining a user namespace, only its own. So user last. */
	static const int order[] = { NS_IPC, NS_UTS, NS_NET, NS_CGROUP, NS_PID, NS_MNT, NS_USER };
	for (size_t i = 0; i < ARRAY_LEN(order); i++) {
		int ns = order[i];
		if (fds[ns] >= 0 && setns(fds[ns], ns_info[ns].flag) < 0)
			child_fail(errno, "join the %s namespace %s", ns_info[ns].name, s->ns_path[ns]);
		if (fds[ns] >= 0)
			close(fds[ns]);
	}
	if (s->ns_new[NS_USER]) {
		if (unshare(CLONE_NEWUSER) < 0)
			child_fail(errno, "create a user namespace");
		child_send(SYNC_USERNS, NULL, 0, -1);
		free(child_expect(SYNC_MAPPED, NULL));
	}
	if (ctrspec_userns(s) && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
		child_fail(errno, "become root in the user namespace (is uid/gid 0 mapped?)");
	/* Created after the user namespace, the others belong to it. */
	int flags = 0;
	for (int i = 0; i < NS_COUNT; i++)
		if (i != NS_USER && s->ns_new[i])
			flags |= ns_info[i].flag;
	if (flags && unshare(flags) < 0)
		child_fail(errno, "create namespaces");

	/*
	 * The init is the agent's child, not ours, so the agent reaps it (or, adopted, the agent's parent's: see
	 * caller_reaps.h); it enters the new pid namespace. It
	 * waits for us to be gone, so that the agent has its pid before anything else it could say.
	 */
	int gone[2];
	if (pipe2(gone, O_CLOEXEC) < 0)
		child_fail(errno, "pipe");
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		child_fail(errno, "clone the init process");
	if (pid == 0) {
		char c;
		close(gone[1]);
		while (read(gone[0], &c, 1) < 0 && errno == EINTR)
			;
		close(gone[0]);
		stage2(a);
	}
	char text[16];
	int n = snprintf(text, sizeof text, "%d", pid);
	child_send(SYNC_PID, text, (size_t)n, -1);
	_exit(0);
}
