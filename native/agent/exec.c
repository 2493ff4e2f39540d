#define _GNU_SOURCE
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "caller_reaps.h"
#include "cgroups.h"
#include "child.h"
#include "container.h"
#include "enclave.h"
#include "launch.h"
#include "log.h"
#include "loop.h"
#include "ns.h"
#include "pty.h"
#include "relay.h"
#include "seccomp_listener.h"
#include "stdio.h"
#include "sync.h"
#include "unix-socket.h"
#include "util.h"

static int agent_pidns = -1;

int exec_init(void)
{
	agent_pidns = ns_open(0, NS_PID);
	return agent_pidns < 0 ? -1 : 0;
}

/* The namespaces an exec'd process joins, in order: as host root any setns is allowed, so user last. */
static const int join_order[] = { NS_IPC, NS_UTS, NS_NET, NS_CGROUP, NS_MNT, NS_USER };

struct exec_args {
	const char *id;
	const struct cgroups *cgroups;
	bool in_unified; /* started in the container's cgroup2 directory (caller_reaps_fork) */
	const struct seccomp_filter *seccomp;
	const struct procspec *proc;
	int sync_fd, console_fd;
	int root_fd; /* the init's root, when its mount namespace is the agent's (it chrooted): -1 otherwise */
	struct stdio_plan stdio;
	int ns[NS_COUNT];
};

static _Noreturn void exec_child(const struct exec_args *a)
{
	const struct procspec *p = a->proc;
	child_init(a->sync_fd, a->id);
	reset_signals();
	setsid();
	if (!caller_reaps_child())
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	stdio_install(&a->stdio);
	int keep[6 + NS_COUNT] = { 0, 1, 2, a->sync_fd, a->console_fd, a->root_fd };
	for (int i = 0; i < NS_COUNT; i++)
		keep[6 + i] = a->ns[i];
	close_fds_except(keep, (int)ARRAY_LEN(keep));
	const char *cgroup;
	if (cgroups_join(a->cgroups, a->in_unified, &cgroup) < 0)
		child_fail(errno, "exec: join the cgroup %s", cgroup);
	if (p->has_oom_score_adj) {
		char text[16];
		snprintf(text, sizeof text, "%d", p->oom_score_adj);
		if (write_file("/proc/self/oom_score_adj", text) < 0)
			child_fail(errno, "exec: oom_score_adj");
	}
	for (size_t i = 0; i < ARRAY_LEN(join_order); i++) {
		int ns = join_order[i];
		if (a->ns[ns] >= 0 && setns(a->ns[ns], ns_info[ns].flag) < 0)
			child_fail(errno, "exec: join the %s namespace", ns_info[ns].name);
	}
	if (a->root_fd >= 0 && (fchdir(a->root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0))
		child_fail(errno, "exec: enter the container's root");
	/* Root of the user namespace (where 0 is mapped) until creds_apply picks the process's own ids. */
	if (a->ns[NS_USER] >= 0 && setresgid(0, 0, 0) == 0)
		(void)!setresuid(0, 0, 0);
	if (p->terminal) {
		int master = pty_setup_process(p, a->console_fd);
		if (master >= 0) {
			child_send(SYNC_PTY, NULL, 0, master);
			close(master);
		}
	}
	launch_chdir(p);
	launch_rlimits(p);
	char *path = launch_lookup(p);
	launch_exec(p, path, a->sync_fd, a->seccomp);
}

/* An exec'd process's seccomp listener to the container's seccomp agent: `running`, as runc gives it. */
static void hand_listener(struct proc *p, int fd)
{
	char err[600];
	err[0] = 0;
	if (seccomp_listener_send(p->ctr->seccomp_listener, fd, "running", p->pid, p->ctr->init->pid, err, sizeof err) == 0 &&
	    sync_send(p->sync_fd, SYNC_SECCOMP_DONE, NULL, 0, -1) == 0)
		return;
	if (!p->error) {
		p->error_errno = errno;
		size_t len = strlen(p->ctr->id) + strlen(err) + 32;
		p->error = xmalloc(len);
		snprintf(p->error, len, "container %s: exec: %s", p->ctr->id, err[0] ? err : errtext(p->error_errno));
	}
	kill(p->pid, SIGKILL);
}

static void on_message(struct proc *p, char tag, char *data, int fd)
{
	if (tag == SYNC_PTY && fd >= 0 && p->stream_to.id) {
		p->relay = relay_pty(p->stream_to.conn, p->stream_to.id, fd);
		return;
	}
	if (tag == SYNC_SECCOMP && fd >= 0)
		hand_listener(p, fd);
	if (fd >= 0)
		close(fd);
	if (tag == SYNC_ERROR && !p->error) {
		char *text = strchr(data, ' ');
		p->error = xstrdup(text ? text + 1 : data);
		p->error_errno = atoi(data); /* it exits next */
	}
}

static void sync_closed(struct proc *p)
{
	loop_unwatch(p->sync_watch);
	p->sync_watch = NULL;
	close(p->sync_fd);
	p->sync_fd = -1;
	if (p->error)
		return;
	/* The close-on-exec end closed without a word: execve succeeded. */
	struct buf b = { 0 };
	record_addf(&b, "pid", "%d", p->pid);
	reply_ok(p->pending, &b);
	p->pending.id = 0;
	buf_free(&b);
}

static void exec_sync_drain(struct proc *p)
{
	sync_drain(p, on_message, sync_closed);
}

static void on_sync(void *ctx, short revents)
{
	(void)revents;
	exec_sync_drain(ctx);
}

/* After a reap: answers a failed exec and forgets it. */
static void exec_settle(struct proc *p)
{
	struct container *c = p->ctr;
	if (p->error && p->exited) {
		reply_error(p->pending, p->error_errno, "%s", p->error);
		p->pending.id = 0;
		proc_forget(p);
	}
	container_settle(c);
}

static const struct proc_kind exec_kind = { exec_sync_drain, exec_settle };

static void close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]), fds[i] = -1;
}

void op_exec(struct request *r)
{
	const char *id = records_get(&r->rec, "id");
	const char *exec_id = records_get(&r->rec, "exec_id");
	struct container *c = id ? ctr_find(id) : NULL;
	if (!c) {
		reply_error(r->to, ENOENT, "container %s: no such container", id ? id : "");
		return;
	}
	if (!exec_id || !*exec_id) {
		reply_error(r->to, EINVAL, "container %s: exec needs an exec_id", id);
		return;
	}
	struct proc *init = c->init;
	if (init->exited) {
		reply_error(r->to, ESRCH, "container %s: cannot exec in a stopped container", id);
		return;
	}
	if (!init->pid || (c->phase != PHASE_CREATED && c->phase != PHASE_RUNNING)) {
		reply_error(r->to, EINVAL, "container %s: cannot exec in a container that is %s", id, proc_status(init));
		return;
	}
	struct proc *old = proc_find(c, exec_id);
	if (old && !old->exited) {
		reply_error(r->to, EEXIST, "container %s: exec %s already exists", id, exec_id);
		return;
	}
	struct procspec ps;
	char err[512];
	if (procspec_parse(&r->rec, &ps, err, sizeof err) < 0) {
		reply_error(r->to, EINVAL, "container %s: exec %s: %s", id, exec_id, err);
		procspec_free(&ps);
		return;
	}
	const char *refused = enclave_mode ? enclave_adjust_exec(&ps) : NULL;
	if (refused) {
		reply_error(r->to, EPERM, "container %s: exec %s: %s", id, exec_id, refused);
		procspec_free(&ps);
		return;
	}
	if (old)
		proc_forget(old);

	struct exec_args a = { .id = c->id, .cgroups = c->cgroups, .seccomp = c->seccomp, .proc = &ps, .sync_fd = -1, .console_fd = -1, .root_fd = -1 };
	int sv[2] = { -1, -1 }, pidns = -1;
	for (int i = 0; i < NS_COUNT; i++)
		a.ns[i] = -1;
	if (stdio_prepare(&ps, &a.stdio) < 0) {
		reply_error(r->to, errno, "container %s: exec: stdio: %s", id, errtext(errno));
		procspec_free(&ps);
		return;
	}
	if (enclave_mode)
		enclave_filter_streams(&a.stdio);
	if (ps.terminal && ps.console_socket) {
		a.console_fd = unix_connect(ps.console_socket);
		if (a.console_fd < 0) {
			reply_error(r->to, errno, "container %s: connect to the console socket %s: %s", id,
				    ps.console_socket, errtext(errno));
			goto fail;
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(join_order); i++) {
		int ns = join_order[i];
		if (!ns_is_agents(init->pid, ns) && (a.ns[ns] = ns_open(init->pid, ns)) < 0) {
			reply_error(r->to, errno, "container %s: exec: open the %s namespace: %s", id, ns_info[ns].name,
				    errtext(errno));
			goto fail;
		}
	}
	if (ns_is_agents(init->pid, NS_MNT)) {
		char root[64];
		snprintf(root, sizeof root, "/proc/%d/root", init->pid);
		a.root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (a.root_fd < 0) {
			reply_error(r->to, errno, "container %s: exec: open %s: %s", id, root, errtext(errno));
			goto fail;
		}
	}
	if (sync_pair(sv) < 0) {
		reply_error(r->to, errno, "container %s: exec: socketpair: %s", id, errtext(errno));
		goto fail;
	}
	if (!ns_is_agents(init->pid, NS_PID)) {
		pidns = ns_open(init->pid, NS_PID);
		if (pidns < 0 || setns(pidns, CLONE_NEWPID) < 0) {
			reply_error(r->to, errno, "container %s: exec: enter the pid namespace: %s", id, errtext(errno));
			goto fail;
		}
	}
	a.sync_fd = sv[1];
	bool adopted = caller_reaps_enabled() && ps.stdio != STDIO_STREAM;
	int unified = cgroups_open_unified(c->cgroups);
	pid_t pid = caller_reaps_fork(adopted, unified, &a.in_unified);
	if (pid == 0)
		exec_child(&a);
	int fork_errno = errno;
	if (unified >= 0)
		close(unified);
	if (pidns >= 0 && setns(agent_pidns, CLONE_NEWPID) < 0)
		log_msg("cannot return to the agent's pid namespace: %s", errtext(errno));
	if (pid < 0) {
		reply_error(r->to, fork_errno, "container %s: exec: fork: %s", id, errtext(fork_errno));
		goto fail;
	}
	close(sv[1]);
	stdio_spawned(&a.stdio);
	struct proc *p = proc_add(c, exec_id);
	p->kind = &exec_kind;
	p->pid = pid;
	p->sync_fd = sv[0];
	p->sync_watch = loop_watch(sv[0], NULL, on_sync, p);
	p->pending = r->to;
	if (adopted && caller_reaps_watch(pid) < 0)
		log_msg("container %s: exec %s: cannot watch pid %d: %s", id, exec_id, pid, errtext(errno));
	if (ps.stdio == STDIO_STREAM) {
		p->stream_to = r->to;
		if (!ps.terminal)
			p->relay = relay_pipes(r->to.conn, r->to.id, a.stdio.in, a.stdio.out, a.stdio.err);
	}
	sv[0] = sv[1] = -1;
	a.stdio.in = a.stdio.out = a.stdio.err = -1;
fail:
	if (pidns >= 0)
		close(pidns);
	close_all(sv, 2);
	close_all(a.ns, NS_COUNT);
	if (a.console_fd >= 0)
		close(a.console_fd);
	if (a.root_fd >= 0)
		close(a.root_fd);
	stdio_cancel(&a.stdio);
	procspec_free(&ps);
}
