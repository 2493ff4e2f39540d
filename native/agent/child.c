#define _GNU_SOURCE
#include "child.h"

#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sync.h"
#include "util.h"

static int sync_fd = -1;
static const char *ctr_id = "?";

void child_init(int fd, const char *container_id)
{
	sync_fd = fd;
	if (container_id)
		ctr_id = container_id;
}

static _Noreturn void fail(int err, bool with_errtext, const char *fmt, va_list ap)
{
	char msg[2048];
	int n = snprintf(msg, sizeof msg, "%d container %s: ", err, ctr_id);
	n += vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	if (n < (int)sizeof msg && with_errtext && err)
		n += snprintf(msg + n, sizeof msg - (size_t)n, ": %s", errtext(err));
	if (n >= (int)sizeof msg)
		n = sizeof msg - 1;
	for (int i = 0; i < n; i++) /* messages are one line */
		if (msg[i] == '\n' || msg[i] == '\r')
			msg[i] = ' ';
	sync_send(sync_fd, SYNC_ERROR, msg, (size_t)n, -1);
	_exit(1);
}

void child_fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fail(err, true, fmt, ap);
}

void child_fail_plain(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fail(err, false, fmt, ap);
}

char *child_expect(char tag, size_t *len)
{
	char got, *data;
	int fd;
	size_t n;
	if (sync_recv(sync_fd, &got, &data, &n, &fd) <= 0 || got != tag)
		_exit(1); /* the agent gave up on us */
	if (fd >= 0)
		close(fd);
	if (len)
		*len = n;
	return data;
}

void child_send(char tag, const void *data, size_t len, int pass_fd)
{
	if (sync_send(sync_fd, tag, data, len, pass_fd) < 0)
		_exit(1);
}
