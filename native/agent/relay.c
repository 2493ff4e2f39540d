#define _GNU_SOURCE
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "conn.h"
#include "frame.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#define STDIN_LIMIT (1u << 20)
#define READ_CHUNK 65536
/* What relay_finish reads at most per stream, in case something still writes to it. */
#define DRAIN_LIMIT (4u << 20)

struct output {
	int fd;
	struct watch *watch;
	uint8_t type;
	bool eof_sent;
	struct relay *relay;
};

struct relay {
	uint64_t conn;
	uint32_t id;
	bool pty;
	int in_fd;
	struct buf in;
	bool in_close_pending;
	struct watch *in_watch;
	struct output out[2];
};

static struct conn *relay_conn(const struct relay *r)
{
	return r->conn ? conn_find(r->conn) : NULL;
}

static void send_eof(struct output *o)
{
	if (o->eof_sent)
		return;
	o->eof_sent = true;
	conn_send(relay_conn(o->relay), o->relay->id, o->type, "", 0);
}

static void close_output(struct output *o)
{
	loop_unwatch(o->watch);
	o->watch = NULL;
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	send_eof(o);
	/* A pty has one stream: its end is the end of both. */
	if (o->relay->pty)
		send_eof(&o->relay->out[1]);
}

/* Reads once; false when the stream is done (EOF, or EIO from a pty whose other side is closed). */
static bool read_output(struct output *o)
{
	char data[READ_CHUNK];
	ssize_t n = read(o->fd, data, sizeof data);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n <= 0) {
		close_output(o);
		return false;
	}
	conn_send(relay_conn(o->relay), o->relay->id, o->type, data, (size_t)n);
	return true;
}

static short want_output(void *ctx)
{
	struct output *o = ctx;
	struct conn *c = relay_conn(o->relay);
	return o->fd >= 0 && !(c && conn_congested(c)) ? POLLIN : 0;
}

static void on_output(void *ctx, short revents)
{
	(void)revents;
	read_output(ctx);
}

static void close_stdin(struct relay *r)
{
	loop_unwatch(r->in_watch);
	r->in_watch = NULL;
	if (r->in_fd >= 0)
		close(r->in_fd);
	r->in_fd = -1;
	buf_free(&r->in);
}

static void write_stdin(struct relay *r)
{
	bool was_full = relay_stdin_full(r);
	while (r->in.len) {
		ssize_t n = write(r->in_fd, r->in.data, r->in.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				close_stdin(r); /* the process closed its stdin: what it did not read is dropped */
			break;
		}
		buf_drop(&r->in, (size_t)n);
	}
	if (r->in_fd >= 0 && !r->in.len && r->in_close_pending)
		close_stdin(r);
	if (was_full && !relay_stdin_full(r))
		conn_resume(relay_conn(r));
}

static short want_stdin(void *ctx)
{
	struct relay *r = ctx;
	return r->in_fd >= 0 && r->in.len ? POLLOUT : 0;
}

static void on_stdin(void *ctx, short revents)
{
	(void)revents;
	write_stdin(ctx);
}

static struct relay *relay_new(uint64_t conn, uint32_t id, int in_fd, int out_fd, int err_fd)
{
	struct relay *r = xcalloc(1, sizeof *r);
	r->conn = conn;
	r->id = id;
	r->in_fd = in_fd;
	if (in_fd >= 0) {
		set_nonblock(in_fd);
		r->in_watch = loop_watch(in_fd, want_stdin, on_stdin, r);
	}
	int fds[2] = { out_fd, err_fd };
	for (int i = 0; i < 2; i++) {
		struct output *o = &r->out[i];
		o->fd = fds[i];
		o->type = i ? FRAME_STDERR : FRAME_STDOUT;
		o->relay = r;
		if (o->fd >= 0) {
			set_nonblock(o->fd);
			o->watch = loop_watch(o->fd, want_output, on_output, o);
		}
	}
	return r;
}

struct relay *relay_pipes(uint64_t conn, uint32_t id, int in_fd, int out_fd, int err_fd)
{
	return relay_new(conn, id, in_fd, out_fd, err_fd);
}

struct relay *relay_pty(uint64_t conn, uint32_t id, int master)
{
	int in = fcntl(master, F_DUPFD_CLOEXEC, 3);
	struct relay *r = relay_new(conn, id, in, master, -1);
	r->pty = true;
	return r;
}

bool relay_matches(const struct relay *r, uint64_t conn, uint32_t id)
{
	return r->conn == conn && r->id == id;
}

bool relay_on_conn(const struct relay *r, uint64_t conn)
{
	return r->conn == conn;
}

void relay_stdin(struct relay *r, const void *data, size_t len)
{
	if (r->in_fd < 0)
		return;
	if (!len) {
		if (r->pty && !r->in_close_pending) {
			/* A terminal has no end of file of its own: type the EOF character, as a user would. */
			struct termios t;
			char eof = tcgetattr(r->in_fd, &t) == 0 ? (char)t.c_cc[VEOF] : 4;
			buf_add(&r->in, &eof, 1);
		}
		r->in_close_pending = true;
	} else {
		buf_add(&r->in, data, len);
	}
	write_stdin(r);
}

bool relay_stdin_full(const struct relay *r)
{
	return r->in_fd >= 0 && r->in.len >= STDIN_LIMIT;
}

int relay_resize(struct relay *r, unsigned short width, unsigned short height)
{
	if (!r->pty || r->out[0].fd < 0)
		return -1;
	struct winsize ws = { .ws_row = height, .ws_col = width };
	return ioctl(r->out[0].fd, TIOCSWINSZ, &ws);
}

void relay_finish(struct relay *r)
{
	close_stdin(r);
	for (int i = 0; i < 2; i++) {
		struct output *o = &r->out[i];
		for (size_t total = 0; o->fd >= 0 && total < DRAIN_LIMIT; total += READ_CHUNK)
			if (!read_output(o))
				break;
		close_output(o);
	}
}

void relay_detach(struct relay *r)
{
	r->conn = 0;
	close_stdin(r);
}

void relay_free(struct relay *r)
{
	close_stdin(r);
	for (int i = 0; i < 2; i++) {
		loop_unwatch(r->out[i].watch);
		if (r->out[i].fd >= 0)
			close(r->out[i].fd);
	}
	free(r);
}
