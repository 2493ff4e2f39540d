#define _GNU_SOURCE
#include "seccomp_listener.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "unix-socket.h"
#include "util.h"

struct seccomp_listener {
	char *path;
	char *state; /* the ContainerProcessState JSON less what the agent completes (PROTOCOL.md) */
};

/* How long the seccomp agent may leave the state unread: the agent's event loop waits meanwhile. */
#define SEND_TIMEOUT_S 5

struct seccomp_listener *seccomp_listener_parse(const struct records *r, char *err, size_t errlen)
{
	err[0] = 0;
	const char *path = records_get(r, "seccomp_listener");
	const char *state = records_get(r, "seccomp_listener_state");
	if (!path && !state)
		return NULL;
	if (!path || path[0] != '/' || !state || state[0] != '{') {
		snprintf(err, errlen, "seccomp_listener needs an absolute path and seccomp_listener_state a JSON object");
		errno = EINVAL;
		return NULL;
	}
	struct seccomp_listener *l = xcalloc(1, sizeof *l);
	l->path = xstrdup(path);
	l->state = xstrdup(state);
	return l;
}

void seccomp_listener_free(struct seccomp_listener *l)
{
	if (!l)
		return;
	free(l->path);
	free(l->state);
	free(l);
}

/* All of text, the fd going with its first bytes (one sendmsg may take only part of a large state). */
static int send_with_fd(int sock, const char *text, size_t len, int fd)
{
	ssize_t n = send_fd(sock, text, len, fd);
	return n < 0 ? -1 : write_all(sock, text + n, len - (size_t)n);
}

int seccomp_listener_send(const struct seccomp_listener *l, int fd, const char *status, pid_t pid, pid_t init_pid,
			  char *err, size_t errlen)
{
	if (!l) {
		snprintf(err, errlen, "seccomp: the filter notifies a seccomp agent but there is no listenerPath");
		errno = EINVAL;
		return -1;
	}
	int sock = unix_connect(l->path);
	if (sock < 0) {
		snprintf(err, errlen, "seccomp: connect to the seccomp agent at %s (listenerPath): %s", l->path, errtext(errno));
		return -1;
	}
	struct timeval timeout = { .tv_sec = SEND_TIMEOUT_S };
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
	struct buf text = { 0 };
	buf_addf(&text, "%s,\"status\":\"%s\",\"pid\":%d},\"pid\":%d}", l->state, status, (int)init_pid, (int)pid);
	int rc = send_with_fd(sock, text.data, text.len, fd);
	if (rc < 0)
		snprintf(err, errlen, "seccomp: send the listener to the seccomp agent at %s (listenerPath): %s", l->path,
			 errtext(errno == EAGAIN ? ETIMEDOUT : errno));
	int saved = errno;
	buf_free(&text);
	close(sock);
	errno = saved;
	return rc;
}
