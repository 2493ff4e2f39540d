#define _GNU_SOURCE
#include "stdio.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

static int saved[3] = { -1, -1, -1 };

void stdio_save_inherited(void)
{
	for (int i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) >= 0)
			saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
}

int stdio_make_inherited_null(int fd)
{
	/* Above 2, as the kept fds must be: the agent's own 0-2 are always open by now. */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || saved[fd] < 0) {
		saved[fd] = null;
		return null < 0 ? -1 : 0;
	}
	int rc = dup3(null, saved[fd], O_CLOEXEC);
	close(null);
	return rc < 0 ? -1 : 0;
}

int stdio_saved_stderr(void)
{
	return saved[2];
}

static bool stdio_inherited_available(void)
{
	return saved[0] >= 0 || saved[1] >= 0 || saved[2] >= 0;
}

static void close_unique(int fds[], int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		for (int j = i + 1; j < n; j++)
			if (fds[j] == fds[i])
				fds[j] = -1;
		close(fds[i]);
		fds[i] = -1;
	}
}

/*
 * The caller's fds 0-2, duplicated from its process with pidfd_getfd(2) (the same open files, as if passed over
 * a socket): a host CLI's `exec --detach` gives the process its own stdio, as runc does. A closed one is /dev/null.
 */
static int take_caller_stdio(pid_t pid, struct stdio_plan *s)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -1;
	for (int i = 0; i < 3; i++) {
		s->child[i] = (int)syscall(SYS_pidfd_getfd, pidfd, i, 0);
		if (s->child[i] < 0 && errno == EBADF)
			s->child[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (s->child[i] < 0) {
			int saved_errno = errno;
			close(pidfd);
			close_unique(s->child, 3);
			errno = saved_errno;
			return -1;
		}
	}
	close(pidfd);
	return 0;
}

int stdio_prepare(const struct procspec *p, struct stdio_plan *s)
{
	*s = (struct stdio_plan){ { -1, -1, -1 }, -1, -1, -1, false };
	if (p->stdio == STDIO_STREAM && !p->terminal) {
		int in[2], out[2], err[2];
		if (pipe2(in, O_CLOEXEC) < 0)
			return -1;
		if (pipe2(out, O_CLOEXEC) < 0) {
			close(in[0]), close(in[1]);
			return -1;
		}
		if (pipe2(err, O_CLOEXEC) < 0) {
			close(in[0]), close(in[1]), close(out[0]), close(out[1]);
			return -1;
		}
		*s = (struct stdio_plan){ { in[0], out[1], err[1] }, in[1], out[0], err[0], false };
		return 0;
	}
	if (p->stdio == STDIO_INHERIT && !p->terminal && p->stdio_from_pid > 0)
		return take_caller_stdio(p->stdio_from_pid, s);
	int null = -1;
	if (p->stdio != STDIO_INHERIT || p->terminal || saved[0] < 0 || saved[1] < 0 || saved[2] < 0) {
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null < 0)
			return -1;
	}
	for (int i = 0; i < 3; i++)
		s->child[i] = null;
	if (p->stdio == STDIO_INHERIT && !p->terminal) {
		if (!stdio_inherited_available())
			log_msg("stdio=inherit: the agent's stdio was given away already; using /dev/null");
		for (int i = 0; i < 3; i++)
			if (saved[i] >= 0)
				s->child[i] = saved[i];
		s->inherited = stdio_inherited_available();
	}
	return 0;
}

void stdio_spawned(struct stdio_plan *s)
{
	if (s->inherited) {
		/* The process now holds the only copies: readers see EOF when it is done with them. */
		for (int i = 0; i < 3; i++)
			saved[i] = -1;
	}
	close_unique(s->child, 3);
}

void stdio_cancel(struct stdio_plan *s)
{
	if (s->inherited)
		for (int i = 0; i < 3; i++)
			if (s->child[i] == saved[i])
				s->child[i] = -1;
	close_unique(s->child, 3);
	int mine[3] = { s->in, s->out, s->err };
	close_unique(mine, 3);
	s->in = s->out = s->err = -1;
}

void stdio_install(const struct stdio_plan *s)
{
	/* The agent's fds 0-2 are taken, so every source here is >= 3 and no dup2 clobbers another. */
	for (int i = 0; i < 3; i++)
		if (s->child[i] >= 0)
			dup2(s->child[i], i);
}
