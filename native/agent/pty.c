#define _GNU_SOURCE
#include "pty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "child.h"

int pty_open(int *slave, char *name, size_t namelen)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return -1;
	int unlock = 0, n = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0)
		goto fail;
	/* The peer of this very master, whatever /dev/pts is in this mount namespace. */
	*slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*slave < 0)
		goto fail;
	snprintf(name, namelen, "/dev/pts/%d", n);
	return master;
fail:;
	int saved = errno;
	close(master);
	errno = saved;
	return -1;
}

void pty_set_size(int fd, unsigned short width, unsigned short height)
{
	if (!width && !height)
		return;
	struct winsize ws = { .ws_row = height, .ws_col = width };
	ioctl(fd, TIOCSWINSZ, &ws);
}

int pty_make_controlling(int slave)
{
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		return -1;
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			return -1;
	if (slave > 2)
		close(slave);
	return 0;
}

/* Sets up the pty of a process with terminal=1; returns the master if the agent relays it, else -1. */
int pty_setup_process(const struct procspec *p, int console_fd)
{
	char name[64];
	int slave;
	int master = pty_open(&slave, name, sizeof name);
	if (master < 0)
		child_fail(errno, "open a pty");
	pty_set_size(master, p->width, p->height);
	/* The process's user owns its terminal, as at a login (not fatal: the process has it open anyway). */
	(void)!fchown(slave, p->uid, p->gid);
	if (pty_make_controlling(slave) < 0)
		child_fail(errno, "make %s the controlling terminal", name);
	if (console_fd < 0)
		return master;
	/* As runc does for --console-socket: the pty's name as the message. */
	if (send_fd(console_fd, name, strlen(name), master) < 0)
		child_fail(errno, "send the pty master to the console socket");
	close(console_fd);
	close(master);
	return -1;
}
