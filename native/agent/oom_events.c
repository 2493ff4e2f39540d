#define _GNU_SOURCE
#include "oom_events.h"

#include "cgroups.h"
#include "conn.h"
#include "frame.h"
#include "loop.h"
#include "registry.h"
#include "util.h"

void oom_report(struct container *c)
{
	if (!cgroups_oom_kills(c->cgroups))
		return;
	struct buf b = { 0 };
	record_add(&b, "event", "oom");
	record_add(&b, "id", c->id);
	conn_broadcast_event(b.data, b.len, 0);
	buf_free(&b);
}

static void on_oom(void *ctx, short revents)
{
	(void)revents;
	oom_report(ctx);
}

void oom_watch_container(struct container *c)
{
	int fd = cgroups_oom_fd(c->cgroups);
	if (fd >= 0)
		c->oom_watch = loop_watch(fd, NULL, on_oom, c);
}
