#define _GNU_SOURCE
#include "conn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "loop.h"
#include "util.h"

/* Output beyond which relays pause, and beyond which a client that does not read is dropped. */
#define OUT_SOFT_LIMIT (1u << 20)
#define OUT_HARD_LIMIT (64u << 20)
#define READ_CHUNK 65536

struct conn {
	uint64_t serial;
	int rfd, wfd;
	struct watch *rwatch, *wwatch;
	struct buf in, out;
	size_t out_head; /* bytes of out already written */
	bool subscribed, dead, processing;
	char name[32];
	void (*on_close)(void *);
	void *on_close_ctx;
	struct conn *next;
};

static struct conn_handlers handlers;
static struct conn *conns;
static uint64_t next_serial = 1;

void conn_set_handlers(const struct conn_handlers *h)
{
	handlers = *h;
}

static size_t out_pending(const struct conn *c)
{
	return c->out.len - c->out_head;
}

static short want_read(void *ctx)
{
	struct conn *c = ctx;
	if (c->dead || (handlers.may_read && !handlers.may_read(c)))
		return 0;
	/* Room for one whole frame of the largest size is all a connection ever buffers. */
	return c->in.len < FRAME_HEADER_LENGTH + FRAME_MAX_PAYLOAD ? POLLIN : 0;
}

static short want_write(void *ctx)
{
	struct conn *c = ctx;
	return !c->dead && out_pending(c) ? POLLOUT : 0;
}

static void flush(struct conn *c)
{
	while (!c->dead && out_pending(c)) {
		ssize_t n = write(c->wfd, c->out.data + c->out_head, out_pending(c));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_close(c);
			return;
		}
		c->out_head += (size_t)n;
	}
	if (!out_pending(c)) {
		c->out.len = c->out_head = 0;
		if (c->out.cap > 4 * READ_CHUNK)
			buf_free(&c->out);
	}
}

static void process_input(struct conn *c)
{
	if (c->processing)
		return; /* a frame handler resumed us: the outer loop carries on */
	c->processing = true;
	size_t off = 0;
	while (!c->dead && c->in.len - off >= FRAME_HEADER_LENGTH) {
		if (handlers.may_read && !handlers.may_read(c))
			break;
		struct frame_header h;
		frame_header_decode(c->in.data + off, &h);
		if (h.len > FRAME_MAX_PAYLOAD) {
			log_msg("%s: frame of %u bytes exceeds the limit; closing", c->name, h.len);
			conn_close(c);
			break;
		}
		if (c->in.len - off < FRAME_HEADER_LENGTH + (size_t)h.len)
			break;
		char *payload = c->in.data + off + FRAME_HEADER_LENGTH;
		/* A record's value must not run into the next frame: save the byte after the payload. */
		char after = payload[h.len];
		payload[h.len] = 0;
		int rc = handlers.frame(c, h.id, h.type, payload, h.len);
		if (c->dead)
			break;
		payload[h.len] = after;
		off += FRAME_HEADER_LENGTH + h.len;
		if (rc) {
			log_msg("%s: malformed frame (type %u, id %u); closing", c->name, h.type, h.id);
			conn_close(c);
			break;
		}
	}
	if (!c->dead) {
		buf_drop(&c->in, off);
		if (!c->in.len && c->in.cap > 4 * READ_CHUNK)
			buf_free(&c->in);
	}
	c->processing = false;
}

static void on_readable(void *ctx, short revents)
{
	struct conn *c = ctx;
	(void)revents;
	buf_reserve(&c->in, READ_CHUNK);
	size_t room = c->in.cap - c->in.len - 1;
	ssize_t n = read(c->rfd, c->in.data + c->in.len, room);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_close(c);
		return;
	}
	if (n < 0)
		return;
	c->in.len += (size_t)n;
	c->in.data[c->in.len] = 0;
	process_input(c);
}

static void on_writable(void *ctx, short revents)
{
	struct conn *c = ctx;
	if (revents & (POLLERR | POLLHUP) && !(revents & POLLOUT)) {
		conn_close(c);
		return;
	}
	flush(c);
}

struct conn *conn_open(int rfd, int wfd, const char *name)
{
	struct conn *c = xcalloc(1, sizeof *c);
	c->serial = next_serial++;
	c->rfd = rfd;
	c->wfd = wfd;
	snprintf(c->name, sizeof c->name, "%s#%llu", name, (unsigned long long)c->serial);
	set_nonblock(rfd);
	set_nonblock(wfd);
	c->rwatch = loop_watch(rfd, want_read, on_readable, c);
	c->wwatch = loop_watch(wfd, want_write, on_writable, c);
	c->next = conns;
	conns = c;
	return c;
}

void conn_on_close(struct conn *c, void (*fn)(void *), void *ctx)
{
	c->on_close = fn;
	c->on_close_ctx = ctx;
}

static void release(void *p)
{
	struct conn *c = p;
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

void conn_close(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	loop_unwatch(c->rwatch);
	loop_unwatch(c->wwatch);
	close(c->rfd);
	if (c->wfd != c->rfd)
		close(c->wfd);
	for (struct conn **p = &conns; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	if (handlers.closed)
		handlers.closed(c);
	if (c->on_close)
		c->on_close(c->on_close_ctx);
	/* Callers up the stack may still hold c (and a payload in c->in): free it after this round. */
	loop_release_later(release, c);
}

uint64_t conn_serial(const struct conn *c)
{
	return c->serial;
}

struct conn *conn_find(uint64_t serial)
{
	for (struct conn *c = conns; c; c = c->next)
		if (c->serial == serial)
			return c;
	return NULL;
}

void conn_subscribe(struct conn *c)
{
	c->subscribed = true;
}

void conn_send(struct conn *c, uint32_t id, uint8_t type, const void *payload, size_t len)
{
	if (!c || c->dead)
		return;
	if (len > FRAME_MAX_PAYLOAD) {
		log_msg("%s: dropping an outgoing frame of %zu bytes", c->name, len);
		return;
	}
	if (out_pending(c) + len > OUT_HARD_LIMIT) {
		log_msg("%s: the client does not read its output; closing", c->name);
		conn_close(c);
		return;
	}
	unsigned char header[FRAME_HEADER_LENGTH];
	frame_header_encode(header, (uint32_t)len, id, type);
	buf_add(&c->out, header, sizeof header);
	buf_add(&c->out, payload, len);
	flush(c);
}

void conn_broadcast_event(const void *payload, size_t len, uint64_t except)
{
	for (struct conn *c = conns, *next; c; c = next) {
		next = c->next;
		if (c->subscribed && c->serial != except)
			conn_send(c, 0, FRAME_EVENT, payload, len);
	}
}

bool conn_congested(const struct conn *c)
{
	return out_pending(c) > OUT_SOFT_LIMIT;
}

void conn_resume(struct conn *c)
{
	if (c && !c->dead)
		process_input(c);
}

void conn_flush_all(int timeout_ms)
{
	uint64_t deadline = now_mono_ms() + (uint64_t)timeout_ms;
	for (;;) {
		struct pollfd pfds[64];
		nfds_t n = 0;
		for (struct conn *c = conns; c && n < ARRAY_LEN(pfds); c = c->next) {
			flush(c);
			if (!c->dead && out_pending(c))
				pfds[n++] = (struct pollfd){ .fd = c->wfd, .events = POLLOUT };
		}
		uint64_t now = now_mono_ms();
		if (!n || now >= deadline)
			return;
		poll(pfds, n, (int)(deadline - now));
	}
}

void conn_close_all(void)
{
	while (conns)
		conn_close(conns);
}
