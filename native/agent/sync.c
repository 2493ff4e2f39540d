#define _GNU_SOURCE
#include "sync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "registry.h"
#include "util.h"

int sync_pair(int fds[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
		return -1;
	/* A state JSON may be as large as a frame: let one message hold it. */
	int size = (int)FRAME_MAX_PAYLOAD + 65536;
	if (setsockopt(fds[0], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
		setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	set_nonblock(fds[0]);
	return 0;
}

int sync_send(int fd, char tag, const void *data, size_t len, int pass_fd)
{
	struct iovec iov[2] = { { &tag, 1 }, { (void *)data, len } };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	if (pass_fd >= 0) {
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof u.buf;
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : 0;
}

int sync_recv(int fd, char *tag, char **data, size_t *len, int *passed_fd)
{
	*passed_fd = -1;
	*data = NULL;
	ssize_t size;
	do
		size = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
	while (size < 0 && errno == EINTR);
	if (size <= 0)
		return (int)size;
	char *buf = xmalloc((size_t)size + 1);
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { buf, (size_t)size };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	ssize_t n;
	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		free(buf);
		return (int)n;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(passed_fd, CMSG_DATA(cm), sizeof(int));
	*tag = buf[0];
	memmove(buf, buf + 1, (size_t)n - 1);
	buf[n - 1] = 0;
	*len = (size_t)n - 1;
	*data = buf;
	return 1;
}

void sync_drain(struct proc *p, void (*on_message)(struct proc *p, char tag, char *data, int passed_fd),
		void (*on_closed)(struct proc *p))
{
	while (p->sync_fd >= 0) {
		char tag, *data;
		size_t len;
		int passed_fd;
		int rc = sync_recv(p->sync_fd, &tag, &data, &len, &passed_fd);
		if (rc < 0 && errno == EAGAIN)
			return;
		if (rc <= 0) {
			on_closed(p);
			return;
		}
		on_message(p, tag, data, passed_fd);
		free(data);
	}
}
