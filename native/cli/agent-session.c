#define _GNU_SOURCE
#include "agent-session.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "facts.h"
#include "file-lock.h"
#include "frame.h"
#include "unix-socket.h"

static void session_init(struct agent_session *s)
{
	memset(s, 0, sizeof *s);
	s->fd = -1;
	s->lease_fd = -1;
}

bool agent_connect_socket(struct agent_session *s, const char *path)
{
	session_init(s);
	s->fd = unix_connect(path);
	return s->fd >= 0;
}

static void set_broken(struct agent_session *s, const char *fmt, const char *detail)
{
	if (!s->broken[0])
		snprintf(s->broken, sizeof s->broken, fmt, detail);
}

/* Reads what the connection has into s->in; false once it is broken (or timeout_ms passed, if >= 0). */
static bool receive(struct agent_session *s, int timeout_ms)
{
	if (timeout_ms >= 0) {
		struct pollfd poller = { .fd = s->fd, .events = POLLIN };
		int ready;
		do
			ready = poll(&poller, 1, timeout_ms);
		while (ready < 0 && errno == EINTR);
		if (ready <= 0)
			return false;
	}
	buf_reserve(&s->in, 65536);
	ssize_t n;
	do
		n = read(s->fd, s->in.data + s->in.len, s->in.cap - 1 - s->in.len);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		set_broken(s, "%s", "the agent closed the connection");
	if (n < 0)
		set_broken(s, "agent connection failed: read %s", strerrorname_np(errno));
	if (n <= 0)
		return false;
	s->in.len += (size_t)n;
	s->in.data[s->in.len] = 0;
	return true;
}

/* The EVENT frame AGENT_GREETING that opens every session on a VM port. */
static size_t greeting(char *out)
{
	frame_header_encode(out, sizeof AGENT_GREETING, 0, FRAME_EVENT);
	memcpy(out + FRAME_HEADER_LENGTH, AGENT_GREETING, sizeof AGENT_GREETING);
	return FRAME_HEADER_LENGTH + sizeof AGENT_GREETING;
}

/* Waits for the agent's greeting; what came before it is an earlier session's tail, what follows is kept. */
static bool await_greeting(struct agent_session *s)
{
	char expected[FRAME_HEADER_LENGTH + sizeof AGENT_GREETING];
	size_t len = greeting(expected);
	uint64_t deadline = now_mono_ms() + AGENT_GREETING_TIMEOUT_MS;
	for (;;) {
		char *at = s->in.len ? memmem(s->in.data, s->in.len, expected, len) : NULL;
		if (at) {
			buf_drop(&s->in, (size_t)(at - s->in.data) + len);
			return true;
		}
		/* Keep only what could be the start of a greeting split across reads. */
		if (s->in.len >= len)
			buf_drop(&s->in, s->in.len - len + 1);
		uint64_t now = now_mono_ms();
		if (!receive(s, now < deadline ? (int)(deadline - now) : 0))
			return false;
	}
}

/* leasePort: a free port's lock, from a random one on (a port just released may still carry its old session). */
static int lease_port(const char *dir, int ports, int *index)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int first = (int)(((unsigned)getpid() ^ (unsigned)now.tv_nsec) % (unsigned)ports);
	char path[4200], name[64];
	for (int i = 0; i <= ports; i++) {
		*index = (first + i) % ports;
		snprintf(name, sizeof name, AGENT_PORT_LOCK, *index);
		if (!join_path(path, sizeof path, dir, name))
			return -1;
		/* Every port busy: wait for the first one, as many clients at once only ever make it wait briefly. */
		int fd = file_lock(path, i == ports);
		if (fd >= 0 || errno != EWOULDBLOCK)
			return fd;
	}
	return -1;
}

bool agent_connect_vm_port(struct agent_session *s, const char *dir, int ports)
{
	session_init(s);
	int index;
	s->lease_fd = lease_port(dir, ports, &index);
	if (s->lease_fd < 0)
		return false;
	char path[4200], name[64];
	snprintf(name, sizeof name, AGENT_PORT_SOCKET, index);
	s->fd = join_path(path, sizeof path, dir, name) ? unix_connect(path) : -1;
	if (s->fd >= 0 && await_greeting(s))
		return true;
	agent_close(s);
	return false;
}

static bool send_all(struct agent_session *s, const void *data, size_t len)
{
	const char *at = data;
	while (len) {
		ssize_t n = send(s->fd, at, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_broken(s, "agent connection failed: write %s", strerrorname_np(errno));
			return false;
		}
		at += n;
		len -= (size_t)n;
	}
	return true;
}

/* The answer's records, as AgentClient takes them: CALL_ERROR with its `error`, or CALL_OK. */
static enum call_result read_answer(char *payload, size_t len, char **message)
{
	struct records answer;
	if (records_parse(payload, len, &answer) < 0) {
		*message = xstrdup("malformed agent records");
		return CALL_ERROR;
	}
	const char *error = records_get(&answer, "error");
	if (error)
		*message = xstrdup(error);
	records_free(&answer);
	return error ? CALL_ERROR : CALL_OK;
}

enum call_result agent_call(struct agent_session *s, uint32_t id, const struct buf *records, char **message)
{
	/* One write for the whole frame: one wake-up of the agent, one virtio-serial transfer into a VM. */
	char header[FRAME_HEADER_LENGTH];
	struct buf frame = { 0 };
	frame_header_encode(header, (uint32_t)records->len, id, FRAME_REQUEST);
	buf_add(&frame, header, sizeof header);
	buf_add(&frame, records->data, records->len);
	if (!s->broken[0])
		send_all(s, frame.data, frame.len);
	buf_free(&frame);
	while (!s->broken[0]) {
		struct frame_header h;
		if (s->in.len >= FRAME_HEADER_LENGTH) {
			frame_header_decode(s->in.data, &h);
			char detail[64];
			if (h.len > FRAME_MAX_PAYLOAD) {
				snprintf(detail, sizeof detail, "%u bytes (limit %d)", h.len, FRAME_MAX_PAYLOAD);
				set_broken(s, "agent sent a frame of %s", detail);
				break;
			}
			if (s->in.len >= FRAME_HEADER_LENGTH + (size_t)h.len) {
				if (h.type < FRAME_REQUEST || h.type > FRAME_STDERR) {
					snprintf(detail, sizeof detail, "%u", h.type);
					set_broken(s, "agent sent a frame of unknown type %s", detail);
					break;
				}
				/* Other frames (events, output of other requests) are not this call's. */
				enum call_result result = CALL_OK;
				bool answered = h.type == FRAME_RESPONSE && h.id == id;
				if (answered)
					result = read_answer(s->in.data + FRAME_HEADER_LENGTH, h.len, message);
				buf_drop(&s->in, FRAME_HEADER_LENGTH + h.len);
				if (answered)
					return result;
				continue;
			}
		}
		receive(s, -1);
	}
	*message = xstrdup(s->broken);
	return CALL_BROKEN;
}

void agent_close(struct agent_session *s)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->lease_fd >= 0)
		close(s->lease_fd);
	buf_free(&s->in);
	session_init(s);
}
