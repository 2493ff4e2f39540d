/*
 * handoff.node: what a pooled process (src/host/pooled-process.ts) needs of the system that Node does not offer:
 * taking a handoff's bytes and fds off its socket (SCM_RIGHTS), putting a received fd at a given number, and
 * renicing all its threads once taken. A Node-API addon, built with the machine's gcc against Node's headers.
 *
 *   receive(fd, timeoutMs) -> { data: Buffer, fds: number[] }   4-byte big-endian length, then that many bytes
 *   dup2(from, to), close(fd), renice(value)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NAPI_VERSION 8
#include <node_api.h>

#define PAYLOAD_MAX (16u << 20)
#define FDS_MAX 8

static napi_value throw_errno(napi_env env, const char *what, int err)
{
	char message[256];
	snprintf(message, sizeof message, "%s: %s", what, strerror(err));
	napi_throw_error(env, NULL, message);
	return NULL;
}

static bool int_args(napi_env env, napi_callback_info info, int32_t *values, size_t count)
{
	napi_value argv[4];
	size_t argc = 4;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count) {
		napi_throw_type_error(env, NULL, "missing arguments");
		return false;
	}
	for (size_t i = 0; i < count; i++) {
		if (napi_get_value_int32(env, argv[i], &values[i]) != napi_ok) {
			napi_throw_type_error(env, NULL, "arguments must be integers");
			return false;
		}
	}
	return true;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct reception {
	char *data;
	size_t len, want;
	int fds[FDS_MAX];
	size_t nfds;
};

/* One recvmsg into r (fds kept, close-on-exec): bytes read, 0 at EOF, -1 with errno. */
static ssize_t receive_some(int fd, struct reception *r, char *into, size_t room)
{
	union {
		char buf[CMSG_SPACE(FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { into, room };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *received = (int *)CMSG_DATA(cm);
		for (size_t i = 0; i < count; i++) {
			if (r->nfds < FDS_MAX)
				r->fds[r->nfds++] = received[i];
			else
				close(received[i]);
		}
	}
	if (msg.msg_flags & MSG_CTRUNC) {
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

/* Fills want bytes of into, waiting until deadline. */
static int receive_exactly(int fd, struct reception *r, char *into, size_t want, uint64_t deadline)
{
	size_t got = 0;
	while (got < want) {
		ssize_t n = receive_some(fd, r, into + got, want - got);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -1;
		uint64_t now = now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
			return -1;
	}
	return 0;
}

static napi_value receive(napi_env env, napi_callback_info info)
{
	int32_t args[2];
	if (!int_args(env, info, args, 2))
		return NULL;
	struct reception r = { 0 };
	uint64_t deadline = now_ms() + (uint64_t)(args[1] > 0 ? args[1] : 0);
	unsigned char length[4];
	int failed = receive_exactly(args[0], &r, (char *)length, sizeof length, deadline);
	size_t len = failed ? 0 : ((size_t)length[0] << 24 | (size_t)length[1] << 16 | (size_t)length[2] << 8 | length[3]);
	if (!failed && len > PAYLOAD_MAX) {
		errno = EMSGSIZE;
		failed = -1;
	}
	char *data = NULL;
	if (!failed && !(data = malloc(len ? len : 1)))
		failed = -1;
	if (!failed)
		failed = receive_exactly(args[0], &r, data, len, deadline);
	if (failed) {
		int err = errno;
		free(data);
		for (size_t i = 0; i < r.nfds; i++)
			close(r.fds[i]);
		return throw_errno(env, "receiving the handoff", err);
	}
	napi_value result, buffer, fds;
	void *copy;
	napi_create_object(env, &result);
	napi_create_buffer_copy(env, len, data, &copy, &buffer);
	free(data);
	napi_create_array_with_length(env, r.nfds, &fds);
	for (size_t i = 0; i < r.nfds; i++) {
		napi_value fd;
		napi_create_int32(env, r.fds[i], &fd);
		napi_set_element(env, fds, (uint32_t)i, fd);
	}
	napi_set_named_property(env, result, "data", buffer);
	napi_set_named_property(env, result, "fds", fds);
	return result;
}

static napi_value do_dup2(napi_env env, napi_callback_info info)
{
	int32_t args[2];
	if (!int_args(env, info, args, 2))
		return NULL;
	if (args[0] != args[1] && dup2(args[0], args[1]) < 0)
		return throw_errno(env, "dup2", errno);
	return NULL;
}

static napi_value do_close(napi_env env, napi_callback_info info)
{
	int32_t args[1];
	if (!int_args(env, info, args, 1))
		return NULL;
	if (close(args[0]) < 0 && errno != EINTR)
		return throw_errno(env, "close", errno);
	return NULL;
}

/* setpriority for every thread of the process: Linux keeps a nice value per thread. */
static napi_value renice(napi_env env, napi_callback_info info)
{
	int32_t args[1];
	if (!int_args(env, info, args, 1))
		return NULL;
	DIR *tasks = opendir("/proc/self/task");
	if (!tasks)
		return throw_errno(env, "/proc/self/task", errno);
	struct dirent *entry;
	int err = 0;
	while ((entry = readdir(tasks))) {
		int tid = atoi(entry->d_name);
		if (tid > 0 && setpriority(PRIO_PROCESS, (id_t)tid, args[0]) < 0 && errno != ESRCH)
			err = errno;
	}
	closedir(tasks);
	return err ? throw_errno(env, "setpriority", err) : NULL;
}

static napi_value init(napi_env env, napi_value exports)
{
	const struct {
		const char *name;
		napi_callback call;
	} functions[] = { { "receive", receive }, { "dup2", do_dup2 }, { "close", do_close }, { "renice", renice } };
	for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
		napi_value fn;
		napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].call, NULL, &fn);
		napi_set_named_property(env, exports, functions[i].name, fn);
	}
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
