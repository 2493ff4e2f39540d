#define _GNU_SOURCE
#include "container.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caller_reaps.h"
#include "container_init.h"
#include "cgroups.h"
#include "device_filter.h"
#include "enclave.h"
#include "freezer.h"
#include "log.h"
#include "loop.h"
#include "oom_events.h"
#include "proc.h"
#include "pty.h"
#include "relay.h"
#include "rootfs.h"
#include "seccomp_filter.h"
#include "seccomp_listener.h"
#include "spec.h"
#include "stdio.h"
#include "sync.h"
#include "unix-socket.h"
#include "util.h"
#include "vm.h"

bool container_id_valid(const char *id)
{
	if (!id || !*id || strlen(id) > 1024 || !strcmp(id, ".") || !strcmp(id, ".."))
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("_.+,-", *p)))
			return false;
	return true;
}

static char *join_lines(char **lines)
{
	struct buf b = { 0 };
	for (char **l = lines; *l; l++)
		buf_addf(&b, "%s\n", *l);
	return b.data ? b.data : xstrdup("");
}

/*
 * The child failed (or vanished): remember why, make sure it is gone (one that reported an error exits by
 * itself), answer once it is reaped.
 */
static void init_failed(struct proc *init, int err, const char *msg, bool kill_it)
{
	struct container *c = init->ctr;
	if (!init->error) {
		init->error = xstrdup(msg);
		init->error_errno = err;
	}
	/* Failing while create is unanswered: nothing is left of it, as if it never was. */
	if (c->phase == PHASE_SPAWNING || (c->finish_at_once && c->phase < PHASE_CREATED))
		c->create_failed = true;
	if (!kill_it)
		return;
	if (c->stage1_pid)
		kill(c->stage1_pid, SIGKILL);
	if (init->pid && !init->exited)
		kill(init->pid, SIGKILL);
}

static void write_id_maps(struct container *c)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/uid_map", c->stage1_pid);
	if (write_file(path, c->uid_map) < 0)
		goto fail;
	if (geteuid() != 0) {
		/* Only an unprivileged writer of gid_map must give up setgroups first. */
		snprintf(path, sizeof path, "/proc/%d/setgroups", c->stage1_pid);
		write_file(path, "deny");
	}
	snprintf(path, sizeof path, "/proc/%d/gid_map", c->stage1_pid);
	if (write_file(path, c->gid_map) < 0)
		goto fail;
	if (sync_send(c->init->sync_fd, SYNC_MAPPED, NULL, 0, -1) < 0)
		goto fail;
	return;
fail:;
	char msg[256];
	int err = errno;
	snprintf(msg, sizeof msg, "container %s: write %s: %s", c->id, path, errtext(err));
	init_failed(c->init, err, msg, true);
}

static void on_message(struct proc *init, char tag, char *data, int fd)
{
	struct container *c = init->ctr;
	struct buf b = { 0 };
	switch (tag) {
	case SYNC_USERNS:
		write_id_maps(c);
		break;
	case SYNC_PID:
		init->pid = atoi(data);
		if (caller_reaps_enabled() && caller_reaps_watch(init->pid) < 0) {
			char msg[256];
			int err = errno;
			snprintf(msg, sizeof msg, "container %s: watch the init process: %s", c->id, errtext(err));
			init_failed(init, err, msg, true);
		}
		if (c->own_pidns) {
			struct stat st;
			char path[64];
			snprintf(path, sizeof path, "/proc/%d/ns/pid", init->pid);
			c->pidns_fd = open(path, O_RDONLY | O_CLOEXEC);
			if (c->pidns_fd >= 0 && fstat(c->pidns_fd, &st) == 0) {
				c->pidns_dev = st.st_dev;
				c->pidns_ino = st.st_ino;
			}
		}
		break;
	case SYNC_HOOKS:
		c->phase = PHASE_HOOKS;
		if (c->finish_at_once) {
			/* No hook is due here: go on as finish_create does, with an empty state, and answer create then. */
			if (sync_send(init->sync_fd, SYNC_CONTINUE, "{}", 2, -1) < 0) {
				char msg[256];
				int err = errno;
				snprintf(msg, sizeof msg, "container %s: finish: %s", c->id, errtext(err));
				init_failed(init, err, msg, true);
				break;
			}
			c->phase = PHASE_FINISHING;
			break;
		}
		record_addf(&b, "pid", "%d", init->pid);
		reply_ok(init->pending, &b);
		init->pending.id = 0;
		break;
	case SYNC_CREATED:
		c->phase = PHASE_CREATED;
		if (fd >= 0 && init->stream_to.id) {
			init->relay = relay_pty(init->stream_to.conn, init->stream_to.id, fd);
			fd = -1;
		}
		if (c->finish_at_once)
			record_addf(&b, "pid", "%d", init->pid);
		reply_ok(init->pending, b.len ? &b : NULL);
		init->pending.id = 0;
		break;
	case SYNC_ERROR: {
		char *text = strchr(data, ' ');
		init_failed(init, atoi(data), text ? text + 1 : data, false);
		break;
	}
	case SYNC_SECCOMP: {
		/* As runc's init: `creating`, the init's pid for both. */
		char err[600], msg[700];
		if (seccomp_listener_send(c->seccomp_listener, fd, "creating", init->pid, init->pid, err, sizeof err) < 0 ||
		    sync_send(init->sync_fd, SYNC_SECCOMP_DONE, NULL, 0, -1) < 0) {
			int saved = errno;
			snprintf(msg, sizeof msg, "container %s: %s", c->id, err[0] ? err : errtext(saved));
			init_failed(init, saved, msg, true);
		}
		break;
	}
	default:
		log_msg("container %s: unexpected sync message '%c'", c->id, tag);
	}
	if (fd >= 0)
		close(fd);
	buf_free(&b);
}

static void sync_closed(struct proc *init)
{
	struct container *c = init->ctr;
	loop_unwatch(init->sync_watch);
	init->sync_watch = NULL;
	close(init->sync_fd);
	init->sync_fd = -1;
	if (init->error)
		return;
	if (c->phase == PHASE_STARTING) {
		/* The close-on-exec end closed without a word: execve succeeded. */
		c->phase = PHASE_RUNNING;
		reply_ok(init->pending, NULL);
		init->pending.id = 0;
	} else if (init->pending.id || c->phase == PHASE_SPAWNING) {
		char msg[512], limit[128];
		const char *when = c->phase == PHASE_SPAWNING ? "ready for the hooks" : "created";
		/* As runc, a memory limit below what the container needs to start fails naming the limit. */
		if (cgroups_oom_killed_since_create(c->cgroups, limit, sizeof limit))
			snprintf(msg, sizeof msg, "container %s: memory limit of %s bytes: the OOM killer ended the init process "
				 "before it was %s: the limit is below what the container needs to start", c->id, limit, when);
		else
			snprintf(msg, sizeof msg, "container %s: the init process ended before it was %s", c->id, when);
		init_failed(init, 0, msg, true);
	}
}

static void init_sync_drain(struct proc *init)
{
	sync_drain(init, on_message, sync_closed);
}

static void on_sync(void *ctx, short revents)
{
	(void)revents;
	init_sync_drain(ctx);
}

void container_settle(struct container *c)
{
	if (!ctr_all_reaped(c))
		return;
	struct proc *init = c->init;
	if (init->error && init->pending.id) {
		reply_error(init->pending, init->error_errno, "%s", init->error);
		init->pending.id = 0;
	}
	if (c->deleting.id) {
		reply_ok(c->deleting, NULL);
		c->deleting.id = 0;
		ctr_forget(c);
	} else if (c->create_failed) {
		ctr_forget(c);
	}
}

static void init_settle(struct proc *init)
{
	container_settle(init->ctr);
}

static const struct proc_kind init_kind = { init_sync_drain, init_settle };

static struct container *find(struct request *r)
{
	const char *id = records_get(&r->rec, "id");
	struct container *c = id ? ctr_find(id) : NULL;
	if (!c)
		reply_error(r->to, ENOENT, "container %s: no such container", id ? id : "");
	return c;
}

static const char *validate(const struct ctrspec *s)
{
	if (!ctrspec_own_mntns(s) && (s->nmasked || s->nreadonly_paths))
		return "unable to restrict sys entries without a private MNT namespace";
	if ((s->hostname || s->domainname) && !s->ns_new[NS_UTS] && !s->ns_path[NS_UTS])
		return "cannot set the hostname without a private UTS namespace";
	if (s->ns_new[NS_USER] && (!s->nuid_map || !s->ngid_map))
		return "a new user namespace needs uid_map and gid_map";
	return NULL;
}

void op_create(struct request *r)
{
	const char *id = records_get(&r->rec, "id");
	if (!container_id_valid(id)) {
		reply_error(r->to, EINVAL, "container %s: invalid container id", id ? id : "");
		return;
	}
	if (ctr_find(id)) {
		reply_error(r->to, EEXIST, "container %s: already exists", id);
		return;
	}
	if (enclave_mode && enclave_begin_create(r, id) < 0)
		return;
	struct ctrspec s;
	char err[512];
	const char *invalid = NULL;
	if (vm_prepare_rootfs(&r->rec, err, sizeof err) < 0) {
		reply_error(r->to, errno, "container %s: %s", id, err);
		return;
	}
	if (ctrspec_parse(&r->rec, &s, err, sizeof err) < 0)
		invalid = err;
	else
		invalid = validate(&s);
	if (!invalid && enclave_mode)
		invalid = enclave_adjust_container(&s);
	if (invalid) {
		reply_error(r->to, EINVAL, "container %s: %s", id, invalid);
		ctrspec_free(&s);
		return;
	}
	struct stdio_plan io;
	if (stdio_prepare(&s.proc, &io) < 0) {
		reply_error(r->to, errno, "container %s: stdio: %s", id, errtext(errno));
		ctrspec_free(&s);
		return;
	}
	if (enclave_mode)
		enclave_filter_streams(&io);
	int console = -1, sv[2] = { -1, -1 };
	bool rootfs_bound = false;
	struct cgroups *cgroups = NULL;
	struct seccomp_listener *listener = NULL;
	struct seccomp_filter *seccomp = seccomp_compile(&r->rec, err, sizeof err);
	if (!seccomp && err[0]) {
		reply_error(r->to, errno, "container %s: %s", id, err);
		goto fail;
	}
	listener = seccomp_listener_parse(&r->rec, err, sizeof err);
	if (!listener && err[0]) {
		reply_error(r->to, errno, "container %s: %s", id, err);
		goto fail;
	}
	cgroups = cgroups_create(id, records_get(&r->rec, "cgroup_path"), records_get(&r->rec, "cgroup_unified_mount"), err,
				 sizeof err);
	if (!cgroups && err[0]) {
		reply_error(r->to, errno, "container %s: %s", id, err);
		goto fail;
	}
	if (cgroups && cgroups_apply(cgroups, &r->rec, err, sizeof err) < 0) {
		reply_error(r->to, errno, "container %s: %s", id, err);
		goto fail;
	}
	if (device_filter_wanted(&r->rec)) {
		const char *dir = cgroups_unified(cgroups);
		if (!dir) {
			reply_error(r->to, EOPNOTSUPP, "container %s: linux.resources.devices: there is no cgroup2 hierarchy here "
				    "for the eBPF device program", id);
			goto fail;
		}
		if (device_filter_attach(&r->rec, dir, err, sizeof err) < 0) {
			reply_error(r->to, errno, "container %s: %s", id, err);
			goto fail;
		}
	}
	if (s.proc.terminal && s.proc.console_socket) {
		console = unix_connect(s.proc.console_socket);
		if (console < 0) {
			reply_error(r->to, errno, "container %s: connect to the console socket %s: %s", id,
				    s.proc.console_socket, errtext(errno));
			goto fail;
		}
	}
	/* Without a mount namespace the mounts go into the agent's own, all inside this bind, which goes at the end. */
	if (!ctrspec_own_mntns(&s)) {
		if (mount(s.rootfs, s.rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
			reply_error(r->to, errno, "container %s: bind mount the rootfs %s: %s", id, s.rootfs, errtext(errno));
			goto fail;
		}
		rootfs_bound = true;
	}
	if (sync_pair(sv) < 0) {
		reply_error(r->to, errno, "container %s: socketpair: %s", id, errtext(errno));
		goto fail;
	}
	struct container *c = ctr_add(id);
	c->init->kind = &init_kind;
	if (vm_mode && records_get(&r->rec, "rootfs_image"))
		c->guest_rootfs = xstrdup(s.rootfs);
	c->cgroups = cgroups;
	c->freezer = cgroups_freezer(cgroups);
	c->seccomp = seccomp;
	c->seccomp_listener = listener;
	cgroups = NULL; /* the container's now: ctr_forget destroys them */
	seccomp = NULL;
	listener = NULL;
	oom_watch_container(c);
	c->uid_map = join_lines(s.uid_map);
	c->gid_map = join_lines(s.gid_map);
	c->own_pidns = s.ns_new[NS_PID] || s.ns_path[NS_PID];
	if (rootfs_bound)
		c->shared_mntns_rootfs = xstrdup(s.rootfs);
	rootfs_bound = false;
	const char *finish = records_get(&r->rec, "finish");
	c->finish_at_once = finish && !strcmp(finish, "1");
	const char *transient = records_get(&r->rec, "transient");
	c->transient = transient && !strcmp(transient, "1");
	c->phase = PHASE_SPAWNING;
	struct init_args a = { &s, sv[1], io, console, c->cgroups, false, c->seccomp };
	bool adopted = caller_reaps_enabled();
	int unified = cgroups_open_unified(c->cgroups);
	pid_t pid = caller_reaps_fork(adopted, unified, &a.in_unified);
	if (pid == 0)
		container_init_stage1(&a);
	int fork_errno = errno;
	if (unified >= 0)
		close(unified);
	close(sv[1]);
	sv[1] = -1;
	if (pid < 0) {
		reply_error(r->to, fork_errno, "container %s: fork: %s", id, errtext(fork_errno));
		ctr_forget(c);
		goto fail;
	}
	if (console >= 0)
		close(console);
	stdio_spawned(&io);
	c->stage1_pid = pid;
	if (adopted && caller_reaps_watch(pid) < 0)
		log_msg("container %s: cannot watch stage 1 (pid %d): %s", id, pid, errtext(errno));
	struct proc *init = c->init;
	init->sync_fd = sv[0];
	init->sync_watch = loop_watch(sv[0], NULL, on_sync, init);
	init->pending = r->to;
	if (s.proc.stdio == STDIO_STREAM) {
		init->stream_to = r->to;
		if (!s.proc.terminal)
			init->relay = relay_pipes(r->to.conn, r->to.id, io.in, io.out, io.err);
	}
	ctrspec_free(&s);
	return;
fail:
	if (rootfs_bound)
		rootfs_release(s.rootfs);
	cgroups_destroy(cgroups);
	seccomp_free(seccomp);
	seccomp_listener_free(listener);
	if (console >= 0)
		close(console);
	if (sv[0] >= 0)
		close(sv[0]);
	stdio_cancel(&io);
	ctrspec_free(&s);
}

/* finish_create and start: hand the state JSON to the waiting init. */
static void proceed(struct request *r, enum phase from, enum phase to, char tag)
{
	struct container *c = find(r);
	if (!c)
		return;
	struct proc *init = c->init;
	if (c->phase != from || init->pending.id || init->sync_fd < 0) {
		reply_error(r->to, EINVAL, "container %s: cannot %s a container that is %s", c->id, r->op,
			    proc_status(init));
		return;
	}
	const char *state = records_get(&r->rec, "state");
	if (!state)
		state = "{}";
	if (sync_send(init->sync_fd, tag, state, strlen(state), -1) < 0) {
		reply_error(r->to, errno, "container %s: %s: %s", c->id, r->op, errtext(errno));
		return;
	}
	c->phase = to;
	init->pending = r->to;
}

void op_finish_create(struct request *r)
{
	proceed(r, PHASE_HOOKS, PHASE_FINISHING, SYNC_CONTINUE);
}

void op_start(struct request *r)
{
	proceed(r, PHASE_CREATED, PHASE_STARTING, SYNC_START);
}

void op_delete(struct request *r)
{
	struct container *c = find(r);
	if (!c)
		return;
	if (c->deleting.id) {
		reply_error(r->to, EBUSY, "container %s: being deleted already", c->id);
		return;
	}
	/* Frozen tasks do not die until thawed. */
	if (c->freezer)
		freezer_set(c->freezer, false);
	if (c->stage1_pid)
		kill(c->stage1_pid, SIGKILL);
	proc_kill_container(c, SIGKILL);
	c->deleting = r->to;
	container_settle(c);
}

void op_update(struct request *r)
{
	struct container *c = find(r);
	if (!c)
		return;
	char err[512];
	if (!c->cgroups)
		reply_error(r->to, EOPNOTSUPP, "container %s: update: there is no cgroup hierarchy here", c->id);
	else if (cgroups_apply(c->cgroups, &r->rec, err, sizeof err) < 0)
		reply_error(r->to, errno, "container %s: update: %s", c->id, err);
	else
		reply_ok(r->to, NULL);
}
