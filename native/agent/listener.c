#define _GNU_SOURCE
#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "util.h"

static int listen_fd = -1;
static struct watch *listen_watch;
static char *listen_path;

static void on_accept(void *ctx, short revents)
{
	(void)ctx;
	(void)revents;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_msg("accept: %s", errtext(errno));
			return;
		}
		conn_open(fd, fd, "unix");
	}
}

int listener_open(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof addr.sun_path) {
		snprintf(err, errlen, "socket path %s is too long", path);
		return -1;
	}
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", errtext(errno));
		return -1;
	}
	/* Created 0600 from the start: no window in which another user could connect. */
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
	int saved = errno;
	umask(old);
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, errtext(saved));
		close(fd);
		return -1;
	}
	if (listen(fd, 128) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, errtext(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	listen_fd = fd;
	listen_path = xstrdup(path);
	listen_watch = loop_watch(fd, NULL, on_accept, NULL);
	return 0;
}

void listener_close(void)
{
	if (listen_fd < 0)
		return;
	loop_unwatch(listen_watch);
	close(listen_fd);
	listen_fd = -1;
	unlink(listen_path);
}
