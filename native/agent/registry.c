#define _GNU_SOURCE
#include "registry.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <string.h>
#include <unistd.h>

#include "cgroups.h"
#include "rootfs.h"
#include "seccomp_filter.h"
#include "seccomp_listener.h"
#include "loop.h"
#include "relay.h"
#include "util.h"

struct container *containers;

struct container *ctr_find(const char *id)
{
	for (struct container *c = containers; c; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

static struct proc *proc_new(struct container *c, const char *exec_id)
{
	struct proc *p = xcalloc(1, sizeof *p);
	p->ctr = c;
	p->exec_id = exec_id ? xstrdup(exec_id) : NULL;
	p->sync_fd = -1;
	return p;
}

struct container *ctr_add(const char *id)
{
	struct container *c = xcalloc(1, sizeof *c);
	c->id = xstrdup(id);
	c->pidns_fd = -1;
	c->init = proc_new(c, NULL);
	c->next = containers;
	containers = c;
	return c;
}

static void proc_free(struct proc *p)
{
	loop_unwatch(p->sync_watch);
	if (p->sync_fd >= 0)
		close(p->sync_fd);
	if (p->relay)
		relay_free(p->relay);
	if (p->pending.id)
		reply_error(p->pending, ESRCH, "container %s: deleted", p->ctr->id);
	for (struct waiter *w = p->waiters, *next; w; w = next) {
		next = w->next;
		reply_error(w->to, ESRCH, "container %s: the process is gone", p->ctr->id);
		free(w);
	}
	free(p->error);
	free(p->exec_id);
	free(p);
}

void ctr_forget(struct container *c)
{
	for (struct container **pp = &containers; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	while (c->execs) {
		struct proc *p = c->execs;
		c->execs = p->next;
		proc_free(p);
	}
	proc_free(c->init);
	if (c->pidns_fd >= 0)
		close(c->pidns_fd);
	loop_unwatch(c->oom_watch);
	cgroups_destroy(c->cgroups);
	seccomp_free(c->seccomp);
	seccomp_listener_free(c->seccomp_listener);
	if (c->shared_mntns_rootfs)
		rootfs_release(c->shared_mntns_rootfs);
	if (c->guest_rootfs)
		umount2(c->guest_rootfs, MNT_DETACH);
	free(c->guest_rootfs);
	free(c->shared_mntns_rootfs);
	free(c->uid_map);
	free(c->gid_map);
	free(c->id);
	free(c);
}

bool ctr_all_reaped(const struct container *c)
{
	if (c->stage1_pid || (c->init->pid && !c->init->exited))
		return false;
	for (struct proc *p = c->execs; p; p = p->next)
		if (p->pid && !p->exited)
			return false;
	return true;
}

/* Exec'd processes that have exited are kept for `wait` and `state`, the most recent ones only. */
#define STOPPED_EXECS_KEPT 256

struct proc *proc_add(struct container *c, const char *exec_id)
{
	struct proc *p = proc_new(c, exec_id);
	p->next = c->execs;
	c->execs = p;
	size_t stopped = 0;
	for (struct proc **pp = &c->execs; *pp;) {
		struct proc *q = *pp;
		if (q->exited && ++stopped > STOPPED_EXECS_KEPT) {
			*pp = q->next;
			proc_free(q);
		} else {
			pp = &q->next;
		}
	}
	return p;
}

struct proc *proc_find(struct container *c, const char *exec_id)
{
	if (!exec_id || !*exec_id)
		return c->init;
	for (struct proc *p = c->execs; p; p = p->next)
		if (!strcmp(p->exec_id, exec_id))
			return p;
	return NULL;
}

struct proc *proc_by_pid(pid_t pid)
{
	for (struct container *c = containers; c; c = c->next) {
		if (c->init->pid == pid)
			return c->init;
		for (struct proc *p = c->execs; p; p = p->next)
			if (p->pid == pid)
				return p;
	}
	return NULL;
}

void proc_forget(struct proc *p)
{
	for (struct proc **pp = &p->ctr->execs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	proc_free(p);
}

const char *proc_status(const struct proc *p)
{
	if (p->exited)
		return "stopped";
	if (p->exec_id)
		return "running";
	switch (p->ctr->phase) {
	case PHASE_SPAWNING:
	case PHASE_HOOKS:
	case PHASE_FINISHING:
		return "creating";
	case PHASE_CREATED:
	case PHASE_STARTING:
		return "created";
	case PHASE_RUNNING:
		return "running";
	case PHASE_STOPPED:
		break;
	}
	return "stopped";
}
