#define _GNU_SOURCE
#include "proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "oom_events.h"
#include "relay.h"
#include "util.h"
#include "vm.h"

static void send_exit_event(const struct proc *p)
{
	struct buf b = { 0 };
	record_add(&b, "event", "exit");
	record_add(&b, "id", p->ctr->id);
	record_add(&b, "exec_id", p->exec_id ? p->exec_id : "");
	record_addf(&b, "pid", "%d", p->pid);
	record_addf(&b, "exit_status", "%d", p->exit_status);
	record_addf(&b, "exited_at", "%llu", (unsigned long long)p->exited_at);
	conn_broadcast_event(b.data, b.len, p->stream_to.conn);
	if (p->stream_to.conn)
		conn_send(conn_find(p->stream_to.conn), 0, FRAME_EVENT, b.data, b.len);
	buf_free(&b);
}

static void answer_waiters(struct proc *p)
{
	struct buf b = { 0 };
	record_addf(&b, "exit_status", "%d", p->exit_status);
	record_addf(&b, "exited_at", "%llu", (unsigned long long)p->exited_at);
	while (p->waiters) {
		struct waiter *w = p->waiters;
		p->waiters = w->next;
		reply_ok(w->to, &b);
		free(w);
	}
	buf_free(&b);
}

/*
 * The init is the agent's child but its pid comes in a message from stage 1, so the agent can reap it before
 * it knows it (an init that fails at once). Such exits are kept here until the pid is known.
 */
#define EARLY_MAX 64
static struct {
	pid_t pid;
	int status;
} early[EARLY_MAX];
static size_t nearly;

static bool init_pid_pending(void)
{
	for (const struct container *c = containers; c; c = c->next)
		if (c->stage1_pid && !c->init->pid) /* stage 1 sends the pid before it exits */
			return true;
	return false;
}

static void exited(pid_t pid, int status);

void reaper_replay(void)
{
	for (size_t i = 0; i < nearly; i++) {
		if (proc_by_pid(early[i].pid)) {
			pid_t pid = early[i].pid;
			int status = early[i].status;
			early[i] = early[--nearly];
			exited(pid, status);
			i = (size_t)-1; /* exited() may have changed anything: start over */
		}
	}
	if (!init_pid_pending())
		nearly = 0;
}

static void exited(pid_t pid, int status)
{
	for (struct container *c = containers; c; c = c->next) {
		if (c->stage1_pid == pid) {
			c->stage1_pid = 0;
			c->init->kind->sync_drain(c->init);
			c->init->kind->settle(c->init);
			return;
		}
	}
	struct proc *p = proc_by_pid(pid);
	if (!p) {
		/* An orphan the agent inherited as subreaper, or an init whose pid is still on its way. */
		if (init_pid_pending() && nearly < EARLY_MAX)
			early[nearly++] = (typeof(early[0])){ pid, status };
		return;
	}
	struct container *c = p->ctr;
	/* What the child said before it died comes first (e.g. start's answer before the exit). */
	if (p->sync_fd >= 0)
		p->kind->sync_drain(p);
	p->exited = true;
	p->exit_status = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
	p->exited_at = now_unix_ns();
	if (!p->exec_id) {
		c->phase = PHASE_STOPPED;
		vm_init_exited(p);
	}
	if (p->relay)
		relay_finish(p->relay);
	oom_report(c);
	answer_waiters(p);
	/* A process that never ran (failed create or exec) has no exit to tell. */
	if (!p->error && !(c->create_failed && !p->exec_id))
		send_exit_event(p);
	p->kind->settle(p);
}

void reaper_exited(pid_t pid, int status)
{
	exited(pid, status);
}

void reaper_reap(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
		if (pid <= 0)
			return;
		if (WIFEXITED(status) || WIFSIGNALED(status))
			exited(pid, status);
	}
}

struct pidlist {
	pid_t *v;
	size_t n;
};

static void pid_add(struct pidlist *l, pid_t pid)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] == pid)
			return;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
	l->v[l->n++] = pid;
}

static bool pid_in(const struct pidlist *l, pid_t pid)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] == pid)
			return true;
	return false;
}

/* Calls fn for every process in /proc. */
static void each_proc(void (*fn)(pid_t pid, void *ctx), void *ctx)
{
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (isdigit((unsigned char)e->d_name[0]))
			fn(atoi(e->d_name), ctx);
	closedir(d);
}

struct ns_scan {
	const struct container *c;
	struct pidlist *list;
};

static void match_pidns(pid_t pid, void *ctx)
{
	struct ns_scan *s = ctx;
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d/ns/pid", pid);
	if (stat(path, &st) == 0 && st.st_ino == s->c->pidns_ino && st.st_dev == s->c->pidns_dev)
		pid_add(s->list, pid);
}

/* Fields of /proc/PID/stat after the command name (field 3 is index 0); 0 on success. */
static int read_stat(pid_t pid, char *buf, size_t len, char **fields, size_t max, size_t *n)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if (read_file(path, buf, len) < 0)
		return -1;
	char *rest = strrchr(buf, ')');
	if (!rest || rest[1] != ' ')
		return -1;
	*n = split_fields(rest + 2, ' ', fields, max);
	return 0;
}

struct tree_scan {
	pid_t *pid, *ppid;
	size_t n;
};

static void collect_parent(pid_t pid, void *ctx)
{
	struct tree_scan *t = ctx;
	char buf[1024], *f[4];
	size_t n;
	if (read_stat(pid, buf, sizeof buf, f, 4, &n) < 0 || n < 2)
		return;
	t->pid = xrealloc(t->pid, (t->n + 1) * sizeof *t->pid);
	t->ppid = xrealloc(t->ppid, (t->n + 1) * sizeof *t->ppid);
	t->pid[t->n] = pid;
	t->ppid[t->n++] = atoi(f[1]);
}

static void read_cgroup_procs(const char *dir, struct pidlist *list)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	int pid;
	while (fscanf(f, "%d", &pid) == 1)
		pid_add(list, pid);
	fclose(f);
}

size_t container_pids(const struct container *c, pid_t **pids)
{
	struct pidlist list = { 0 };
	if (c->own_pidns && c->pidns_ino) {
		/* A pid namespace's processes all die with its init: once it has exited there is nothing to find. */
		if (c->init->pid && !c->init->exited) {
			struct ns_scan s = { c, &list };
			each_proc(match_pidns, &s);
		}
	} else if (c->freezer) {
		read_cgroup_procs(c->freezer, &list);
	} else {
		if (c->init->pid && !c->init->exited)
			pid_add(&list, c->init->pid);
		for (const struct proc *p = c->execs; p; p = p->next)
			if (p->pid && !p->exited)
				pid_add(&list, p->pid);
		struct tree_scan t = { 0 };
		each_proc(collect_parent, &t);
		/* Adds children of what is in the list until nothing changes (one pass per generation). */
		for (size_t before = 0; before != list.n;) {
			before = list.n;
			for (size_t i = 0; i < t.n; i++)
				if (pid_in(&list, t.ppid[i]))
					pid_add(&list, t.pid[i]);
		}
		free(t.pid);
		free(t.ppid);
	}
	*pids = list.v;
	return list.n;
}

void proc_kill_container(const struct container *c, int sig)
{
	pid_t *pids;
	size_t n = container_pids(c, &pids);
	for (size_t i = 0; i < n; i++)
		kill(pids[i], sig);
	free(pids);
	if (c->init->pid && !c->init->exited)
		kill(c->init->pid, sig);
	for (const struct proc *p = c->execs; p; p = p->next)
		if (p->pid && !p->exited)
			kill(p->pid, sig);
}

static struct container *find_container(struct request *r)
{
	const char *id = records_get(&r->rec, "id");
	struct container *c = id ? ctr_find(id) : NULL;
	if (!c)
		reply_error(r->to, ENOENT, "container %s: no such container", id ? id : "");
	return c;
}

static struct proc *find_proc(struct request *r)
{
	struct container *c = find_container(r);
	if (!c)
		return NULL;
	const char *exec_id = records_get(&r->rec, "exec_id");
	struct proc *p = proc_find(c, exec_id);
	if (!p)
		reply_error(r->to, ENOENT, "container %s: no such exec %s", c->id, exec_id);
	return p;
}

void op_wait(struct request *r)
{
	struct proc *p = find_proc(r);
	if (!p)
		return;
	struct waiter *w = xcalloc(1, sizeof *w);
	w->to = r->to;
	w->next = p->waiters;
	p->waiters = w;
	if (p->exited)
		answer_waiters(p);
}

void op_signal(struct request *r)
{
	struct proc *p = find_proc(r);
	if (!p)
		return;
	uint64_t sig;
	const char *text = records_get(&r->rec, "signal");
	if (!parse_u64(text, &sig) || sig > 64) {
		reply_error(r->to, EINVAL, "container %s: invalid signal %s", p->ctr->id, text ? text : "");
		return;
	}
	const char *all = records_get(&r->rec, "all");
	if (all && !strcmp(all, "1")) {
		pid_t *pids;
		size_t n = container_pids(p->ctr, &pids), sent = 0;
		for (size_t i = 0; i < n; i++)
			sent += kill(pids[i], (int)sig) == 0;
		free(pids);
		if (!sent)
			reply_error(r->to, ESRCH, "container %s: process not running", p->ctr->id);
		else
			reply_ok(r->to, NULL);
		return;
	}
	if (!p->pid || p->exited) {
		reply_error(r->to, ESRCH, "container %s: process not running", p->ctr->id);
		return;
	}
	if (kill(p->pid, (int)sig) < 0)
		reply_error(r->to, errno, "container %s: kill: %s", p->ctr->id, errtext(errno));
	else
		reply_ok(r->to, NULL);
}

void op_ps(struct request *r)
{
	struct container *c = find_container(r);
	if (!c)
		return;
	pid_t *pids;
	size_t n = container_pids(c, &pids);
	struct buf b = { 0 };
	for (size_t i = 0; i < n; i++)
		record_addf(&b, "pid", "%d", pids[i]);
	free(pids);
	reply_ok(r->to, &b);
	buf_free(&b);
}

void op_stats(struct request *r)
{
	struct container *c = find_container(r);
	if (!c)
		return;
	pid_t *pids;
	size_t n = container_pids(c, &pids);
	unsigned long long ticks = 0, pages = 0;
	for (size_t i = 0; i < n; i++) {
		char buf[1024], *f[24];
		size_t nf;
		/* utime, stime, cutime, cstime are fields 14-17 and rss field 24 of /proc/PID/stat. */
		if (read_stat(pids[i], buf, sizeof buf, f, 24, &nf) < 0 || nf < 22)
			continue;
		for (int k = 11; k <= 14; k++)
			ticks += strtoull(f[k], NULL, 10);
		pages += strtoull(f[21], NULL, 10);
	}
	free(pids);
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct buf b = { 0 };
	record_addf(&b, "cpu_ns", "%llu", ticks * (1000000000ull / (unsigned long long)(hz > 0 ? hz : 100)));
	record_addf(&b, "rss_bytes", "%llu", pages * (unsigned long long)page);
	record_addf(&b, "pids", "%zu", n);
	reply_ok(r->to, &b);
	buf_free(&b);
}
