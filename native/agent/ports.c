#define _GNU_SOURCE
#include "ports.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

#include "conn.h"
#include "frame.h"
#include "guest.h"
#include "log.h"
#include "util.h"

#define PORTS_MAX 16

struct port {
	char name[24];
	char path[64];
	int fd; /* open, waiting for a host (no conn), or owned by conn */
	struct conn *conn;
};

static struct port ports[PORTS_MAX];
static int nports;
static bool closing;

static const char greeting[] = AGENT_GREETING; /* sent with its NUL: one record */

static void port_closed(void *ctx);

/* Starts a session on a port whose host is attached; otherwise leaves it for the next SIGIO. */
static void port_check(struct port *p)
{
	if (p->conn || p->fd < 0)
		return;
	struct pollfd pfd = { .fd = p->fd, .events = POLLOUT };
	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & POLLHUP))
		return;
	p->conn = conn_open(p->fd, p->fd, p->name);
	conn_on_close(p->conn, port_closed, p);
	conn_send(p->conn, 0, FRAME_EVENT, greeting, sizeof greeting);
}

static void port_arm(struct port *p)
{
	/*
	 * A port opens once at a time: until a child forked a moment ago has exec'd (closing its copy), the old fd
	 * is not released and this fails with EBUSY. ports_poll() tries again.
	 */
	p->fd = open(p->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (p->fd < 0) {
		if (errno != EBUSY)
			log_msg("%s: open %s: %s", p->name, p->path, errtext(errno));
		return;
	}
	/* SIGIO comes on every change of the host's side (and on data); asked for before looking, so none is missed. */
	if (fcntl(p->fd, F_SETOWN, getpid()) < 0 || fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_ASYNC) < 0)
		log_msg("%s: O_ASYNC: %s", p->name, errtext(errno));
	port_check(p);
}

static void port_closed(void *ctx)
{
	struct port *p = ctx;
	p->conn = NULL; /* conn_close closed the fd: what the old client left unread is gone with it */
	p->fd = -1;
	if (!closing)
		port_arm(p);
}

int ports_open(void)
{
	for (nports = 0; nports < PORTS_MAX; nports++) {
		struct port *p = &ports[nports];
		snprintf(p->name, sizeof p->name, AGENT_PORT_NAME, nports);
		if (guest_find_port(p->name, p->path, sizeof p->path) < 0)
			break;
		port_arm(p);
	}
	return nports;
}

void ports_poll(void)
{
	for (int i = 0; i < nports; i++) {
		if (ports[i].fd < 0 && !closing)
			port_arm(&ports[i]);
		else
			port_check(&ports[i]);
	}
}

bool ports_reopen_pending(void)
{
	for (int i = 0; i < nports; i++)
		if (ports[i].fd < 0 && !closing)
			return true;
	return false;
}

bool ports_any_attached(void)
{
	for (int i = 0; i < nports; i++)
		if (ports[i].conn)
			return true;
	return false;
}

void ports_close(void)
{
	closing = true;
}
