#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "caller_bound.h"
#include "enclave.h"
#include "container.h"
#include "exec.h"
#include "freezer.h"
#include "log.h"
#include "proc.h"
#include "registry.h"
#include "relay.h"
#include "util.h"
#include "vm.h"

bool server_stopping;
struct reply_to server_shutdown_reply;

static void op_hello(struct request *r)
{
	struct buf b = { 0 };
	record_add(&b, "version", "1");
	record_addf(&b, "pid", "%d", getpid());
	static const char *const features[] = { "pidns", "userns", "pty", "exec", "hooks" };
	for (size_t i = 0; i < ARRAY_LEN(features); i++)
		record_add(&b, "features", features[i]);
	if (freezer_available())
		record_add(&b, "features", "pause");
	/* smaps_rollup walks the page tables: statm's counters may lag behind by dozens of pages. */
	FILE *smaps = fopen("/proc/self/smaps_rollup", "re");
	char line[256];
	unsigned long long rss_kib;
	while (smaps && fgets(line, sizeof line, smaps))
		if (sscanf(line, "Rss: %llu kB", &rss_kib) == 1)
			record_addf(&b, "rss_bytes", "%llu", rss_kib * 1024);
	if (smaps)
		fclose(smaps);
	reply_ok(r->to, &b);
	buf_free(&b);
}

static void op_state(struct request *r)
{
	const char *id = records_get(&r->rec, "id");
	if (id && !ctr_find(id)) {
		reply_error(r->to, ENOENT, "container %s: no such container", id);
		return;
	}
	struct buf b = { 0 };
	for (struct container *c = containers; c; c = c->next) {
		if ((id && strcmp(c->id, id)) || c->create_failed)
			continue;
		for (struct proc *p = c->init; p; p = p == c->init ? c->execs : p->next)
			if (!p->error || !p->exec_id)
				record_addf(&b, "process", "%s\x1f%s\x1f%d\x1f%s\x1f%d\x1f%llu", c->id,
					    p->exec_id ? p->exec_id : "", p->pid, proc_status(p), p->exit_status,
					    (unsigned long long)p->exited_at);
	}
	reply_ok(r->to, &b);
	buf_free(&b);
}

static void freeze(struct request *r, bool frozen)
{
	const char *id = records_get(&r->rec, "id");
	struct container *c = id ? ctr_find(id) : NULL;
	if (!c)
		reply_error(r->to, ENOENT, "container %s: no such container", id ? id : "");
	else if (!c->freezer)
		reply_error(r->to, EOPNOTSUPP, "container %s: %s is not supported here (no cgroup v1 freezer)", id,
			    r->op);
	else if (freezer_set(c->freezer, frozen) < 0)
		reply_error(r->to, errno, "container %s: %s: %s", id, r->op, errtext(errno));
	else
		reply_ok(r->to, NULL);
}

static void op_pause(struct request *r)
{
	freeze(r, true);
}

static void op_resume(struct request *r)
{
	freeze(r, false);
}

static void op_resize(struct request *r)
{
	const char *id = records_get(&r->rec, "id"), *exec_id = records_get(&r->rec, "exec_id");
	struct container *c = id ? ctr_find(id) : NULL;
	struct proc *p = c ? proc_find(c, exec_id) : NULL;
	uint64_t w, h;
	if (!p)
		reply_error(r->to, ENOENT, "container %s: no such process", id ? id : "");
	else if (!parse_u64(records_get(&r->rec, "width"), &w) || !parse_u64(records_get(&r->rec, "height"), &h) ||
		 w > 65535 || h > 65535)
		reply_error(r->to, EINVAL, "container %s: resize needs width and height", id);
	else if (!p->relay || relay_resize(p->relay, (unsigned short)w, (unsigned short)h) < 0)
		reply_error(r->to, ENOTTY, "container %s: the process has no pty relayed by the agent", id);
	else
		reply_ok(r->to, NULL);
}

static void op_subscribe(struct request *r)
{
	conn_subscribe(r->conn);
	reply_ok(r->to, NULL);
}

static void op_vm_restored(struct request *r)
{
	char err[256];
	if (!vm_mode)
		reply_error(r->to, EOPNOTSUPP, "vm_restored: the agent is not a microVM's init");
	else if (enclave_mode)
		reply_error(r->to, EOPNOTSUPP, "vm_restored: an enclave VM is never a template's clone");
	else if (vm_restored(&r->rec, err, sizeof err) < 0)
		reply_error(r->to, EINVAL, "%s", err);
	else
		reply_ok(r->to, NULL);
}

static void op_shutdown(struct request *r)
{
	/* main.c ends every container, then answers this, then exits. */
	server_stopping = true;
	server_shutdown_reply = r->to;
}

static const struct {
	const char *name;
	void (*run)(struct request *r);
} ops[] = {
	{ "hello", op_hello },
	{ "create", op_create },
	{ "finish_create", op_finish_create },
	{ "start", op_start },
	{ "exec", op_exec },
	{ "signal", op_signal },
	{ "wait", op_wait },
	{ "state", op_state },
	{ "ps", op_ps },
	{ "stats", op_stats },
	{ "pause", op_pause },
	{ "resume", op_resume },
	{ "resize", op_resize },
	{ "delete", op_delete },
	{ "update", op_update },
	{ "subscribe", op_subscribe },
	{ "shutdown", op_shutdown },
	{ "recorded", op_recorded },
	{ "vm_restored", op_vm_restored },
};

static struct relay *relay_for(uint64_t conn, uint32_t id)
{
	for (struct container *c = containers; c; c = c->next) {
		if (c->init->relay && relay_matches(c->init->relay, conn, id))
			return c->init->relay;
		for (struct proc *p = c->execs; p; p = p->next)
			if (p->relay && relay_matches(p->relay, conn, id))
				return p->relay;
	}
	return NULL;
}

static int on_frame(struct conn *c, uint32_t id, uint8_t type, char *payload, size_t len)
{
	if (type == FRAME_STDIN) {
		struct relay *relay = relay_for(conn_serial(c), id);
		if (relay)
			relay_stdin(relay, payload, len);
		return 0;
	}
	if (type != FRAME_REQUEST || id == 0)
		return -1;
	struct request r = { .conn = c, .to = { conn_serial(c), id } };
	if (records_parse(payload, len, &r.rec) < 0)
		return -1;
	r.op = records_get(&r.rec, "op");
	size_t i = 0;
	while (r.op && i < ARRAY_LEN(ops) && strcmp(ops[i].name, r.op))
		i++;
	if (!r.op)
		reply_error(r.to, EINVAL, "the request has no op");
	else if (i == ARRAY_LEN(ops))
		reply_error(r.to, EINVAL, "unknown op %s", r.op);
	else if (server_stopping)
		reply_error(r.to, ESHUTDOWN, "the agent is shutting down");
	else
		ops[i].run(&r);
	records_free(&r.rec);
	return 0;
}

static bool may_read(struct conn *c)
{
	uint64_t serial = conn_serial(c);
	for (struct container *ct = containers; ct; ct = ct->next) {
		if (ct->init->relay && relay_on_conn(ct->init->relay, serial) && relay_stdin_full(ct->init->relay))
			return false;
		for (struct proc *p = ct->execs; p; p = p->next)
			if (p->relay && relay_on_conn(p->relay, serial) && relay_stdin_full(p->relay))
				return false;
	}
	return true;
}

static void on_closed(struct conn *c)
{
	uint64_t serial = conn_serial(c);
	for (struct container *ct = containers; ct; ct = ct->next) {
		if (ct->init->relay && relay_on_conn(ct->init->relay, serial))
			relay_detach(ct->init->relay);
		for (struct proc *p = ct->execs; p; p = p->next)
			if (p->relay && relay_on_conn(p->relay, serial))
				relay_detach(p->relay);
	}
}

void server_init(void)
{
	static const struct conn_handlers handlers = { on_frame, may_read, on_closed };
	conn_set_handlers(&handlers);
}
