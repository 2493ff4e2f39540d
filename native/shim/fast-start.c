/*
 * `start` over ttrpc, as src/shim/shim-start.ts does it: the socket of the container's group at
 * /run/containerd/s/<sha256(address/namespace/group)>; if a shim already serves it, that shim serves this
 * container too; otherwise the socket is bound (mode 0600, renamed into place from a private directory) and
 * the long-running shim is started in Node, detached, with it as fd 3 — or, when the warm pool has an idle shim
 * of this build, handed to that one (docs/warm-pool.md), and the pool refilled in the background. Prints the
 * address and nothing else. Whatever goes wrong here is left to the TypeScript `start`, which tries again and
 * reports it in its words.
 */
#define _GNU_SOURCE
#include "shim-launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomic-file.h"
#include "config-group.h"
#include "facts.h"
#include "frame.h"
#include "pool-config.h"
#include "sha256.h"
#include "small-file.h"
#include "unix-socket.h"
#include "util.h"
#include "warm-pool.h"

#define CONFIG_LIMIT (16 << 20)
#define GROUP_MAX 256
#define OPTIONS_LIMIT 65536

/* Takes the runtime options containerd writes on stdin (so that its write completes): their first
 * OPTIONS_LIMIT bytes, the rest read and dropped. */
static size_t read_runtime_options(unsigned char *options)
{
	size_t len = 0;
	for (;;) {
		unsigned char rest[4096];
		bool room = len < OPTIONS_LIMIT;
		ssize_t n = read(0, room ? options + len : rest, room ? OPTIONS_LIMIT - len : sizeof rest);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return len;
		if (room)
			len += (size_t)n;
	}
}

/* The group's id, or NULL when config.json is something the TypeScript side must judge. */
static const char *container_group(const char *bundle, const char *id, char *group)
{
	char path[4096];
	if (!join_path(path, sizeof path, bundle, "config.json"))
		return NULL;
	size_t len;
	char *json = read_small_file(path, CONFIG_LIMIT, &len);
	/* Like shim-start.ts: a config.json that cannot be read fails Create later; here the container is its own group. */
	if (!json)
		return id;
	enum group_result result = config_group(json, len, group, GROUP_MAX);
	free(json);
	if (result == GROUP_UNSURE)
		return NULL;
	return result == GROUP_FOUND ? group : id;
}

/* Moves fd to a number of at least 10, out of the way of the 0-3 the child sets up. */
static int lift(int fd)
{
	return fd < 0 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 10);
}

/* The bundle's log FIFO for the shim's stderr, read-write so that opening it never waits for a reader (or
 * /dev/null without one). */
static int open_log(const char *bundle)
{
	char log_path[4096];
	int log = join_path(log_path, sizeof log_path, bundle, BUNDLE_LOG_FIFO)
		? open(log_path, O_RDWR | O_NONBLOCK | O_APPEND | O_CLOEXEC)
		: -1;
	return log >= 0 ? log : open("/dev/null", O_WRONLY | O_CLOEXEC);
}

/* The long-running shim's arguments (serveArguments in shim-flags.ts), NULL-terminated. */
static void serve_arguments(const struct launch *launch, const char *bundle, const char **args)
{
	const struct shim_flags *flags = &launch->flags;
	const char *list[] = { "-namespace", flags->namespace, "-id", flags->id, "-address", flags->address ? flags->address : "",
			       "-publish-binary", flags->publish_binary ? flags->publish_binary : "", "-bundle", bundle };
	memcpy(args, list, sizeof list);
	size_t n = ARRAY_LEN(list);
	if (flags->debug)
		args[n++] = "-debug";
	args[n] = NULL;
}

/* Hands the shim's work to an idle pooled shim: the listening socket as its SHIM_INHERITED_FD, the log FIFO as its
 * stderr, and what a spawned shim gets (arguments, environment, the bundle as cwd, and the socket's path); its pid,
 * or -1. *connection is kept open until the pod's files are written (serve_pod): a pooled shim whose start ends
 * before that serves nothing. */
static pid_t hand_to_pool(const struct pool *pool, const struct launch *launch, const char *bundle, int listener,
			  const char *socket_path, int *connection)
{
	const char *args[16];
	serve_arguments(launch, bundle, args);
	struct buf records = { 0 };
	pool_add_process_records(&records, args, bundle);
	record_add(&records, "socket", socket_path);
	int log = open_log(bundle), null = open("/dev/null", O_RDWR | O_CLOEXEC);
	pid_t pid = -1;
	if (log >= 0 && null >= 0) {
		const int fds[] = { null, null, log, listener };
		*connection = pool_take(pool, &records, fds, ARRAY_LEN(fds), &pid);
		if (*connection < 0)
			pid = -1;
	}
	if (log >= 0)
		close(log);
	if (null >= 0)
		close(null);
	buf_free(&records);
	return pid;
}

/* Starts `node ENTRY -namespace … -bundle DIR` detached with the socket as SHIM_INHERITED_FD; its pid, or -1. */
static pid_t spawn_shim(const struct launch *launch, const char *bundle, int listener)
{
	int log = open_log(bundle);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int report[2];
	if (log < 0 || null < 0 || pipe2(report, O_CLOEXEC) != 0)
		return -1;

	const char *argv[18] = { "node", launch->node_entry };
	serve_arguments(launch, bundle, argv + 2);

	pid_t pid = fork();
	if (pid == 0) {
		int fds[3] = { lift(listener), lift(log), lift(null) };
		if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || setsid() < 0 || chdir(bundle) != 0 || dup2(fds[2], 0) < 0 ||
		    dup2(fds[2], 1) < 0 || dup2(fds[1], 2) < 0 || dup2(fds[0], SHIM_INHERITED_FD) < 0)
			goto failed;
		/* Nothing else the launcher was given outlives the exec into the shim (the report pipe: until then). */
		close_range(SHIM_INHERITED_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC);
		execvp("node", (char *const *)argv);
failed:;
		int error = errno;
		(void)!write(report[1], &error, sizeof error);
		_exit(127);
	}
	close(report[1]);
	int error = 0;
	ssize_t n;
	do
		n = read(report[0], &error, sizeof error);
	while (n < 0 && errno == EINTR);
	close(report[0]);
	close(log);
	close(null);
	if (pid < 0)
		return -1;
	if (n > 0) {
		/* exec failed: the child is gone, reap it. */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		errno = error;
		return -1;
	}
	return pid;
}

/* BUNDLE/address and BUNDLE/shim.pid, as containerd's own shims write them. */
static bool write_shim_files(const char *bundle, const char *address, pid_t pid)
{
	char path[4096];
	if (!join_path(path, sizeof path, bundle, BUNDLE_ADDRESS_FILE) || write_file_atomic(path, address, 0644, NULL) < 0)
		return false;
	if (pid <= 0)
		return true;
	char text[32];
	snprintf(text, sizeof text, "%d", (int)pid);
	return join_path(path, sizeof path, bundle, SHIM_PID_FILE) && write_file_atomic(path, text, 0644, NULL) == 0;
}

/* The serving shim's private directory (shimStateDir in shim-socket.ts). */
static void state_directory(char *out, size_t len, const char *socket_path)
{
	snprintf(out, len, SHIM_STATE_ROOT "/%s", socket_path + strlen(socket_path) - SHIM_STATE_DIR_NAME_LENGTH);
}

/* Records the new shim's pid in its private directory at once, for the next container of the group (see
 * writeServingShimPid in bundle-record.ts). */
static bool write_serving_shim_pid(const char *socket_path, pid_t pid)
{
	char dir[256], path[512], text[32];
	state_directory(dir, sizeof dir, socket_path);
	snprintf(text, sizeof text, "%d", (int)pid);
	return mkdir_all(dir, 0700) == 0 && join_path(path, sizeof path, dir, SHIM_PID_FILE) &&
	       write_file_atomic(path, text, 0600, NULL) == 0;
}

/* The pid the serving shim's `start` or the shim itself wrote in its private directory, or 0. */
static pid_t serving_shim_pid(const char *socket_path)
{
	char dir[256], path[512];
	state_directory(dir, sizeof dir, socket_path);
	if (!join_path(path, sizeof path, dir, SHIM_PID_FILE))
		return 0;
	char *text = read_small_file(path, 32, NULL);
	pid_t pid = text ? (pid_t)atoi(text) : 0;
	free(text);
	return pid > 0 ? pid : 0;
}

void fast_start(const struct launch *launch)
{
	const struct shim_flags *flags = &launch->flags;
	const char *protocol = getenv(ENV_SHIM_PROTOCOL);
	if (protocol && strcmp(protocol, "ttrpc") != 0)
		return;
	static unsigned char options[OPTIONS_LIMIT];
	size_t options_len = read_runtime_options(options);

	char cwd[4096];
	const char *bundle = flags->bundle;
	if (!bundle && !(bundle = getcwd(cwd, sizeof cwd)))
		return;
	char group_buffer[GROUP_MAX];
	const char *group = container_group(bundle, flags->id, group_buffer);
	if (!group)
		return;

	char key[8192];
	int key_len = snprintf(key, sizeof key, "%s/%s/%s", flags->address ? flags->address : "", flags->namespace, group);
	if (key_len < 0 || (size_t)key_len >= sizeof key)
		return;
	char digest[65];
	sha256_hex(key, (size_t)key_len, digest);
	char socket_path[128], address[160];
	snprintf(socket_path, sizeof socket_path, SHIM_SOCKET_DIRECTORY "/%s", digest);
	snprintf(address, sizeof address, "unix://%s", socket_path);

	struct pool pool, vm_pool;
	bool pooled = false, vm_pooled = false, took_vm = false;
	if (unix_socket_served(socket_path)) {
		/* Another container of the same group: its shim serves this one too. */
		if (!write_shim_files(bundle, address, serving_shim_pid(socket_path)))
			return;
	} else {
		int listener = unix_listen_private(socket_path);
		if (listener < 0)
			return;
		pooled = pool_open(&pool, POOL_KIND_SHIM, launch->node_entry);
		if (pooled)
			pool_config_from_options(&pool, options, options_len);
		/* A new shim boots the group's sandbox: where VM members are kept, one of those (its VM restored and
		 * waiting) is taken first; it serves the pod as any pooled shim does if its VM does not fit the pod. */
		vm_pooled = pooled && pool.vms > 0 && pool_open(&vm_pool, POOL_KIND_SHIM_VM, launch->node_entry);
		if (vm_pooled) {
			vm_pool.size = pool.vms;
			vm_pool.idle_seconds = pool.idle_seconds;
		}
		int connection = -1;
		pid_t pid = vm_pooled ? hand_to_pool(&vm_pool, launch, bundle, listener, socket_path, &connection) : -1;
		took_vm = pid > 0;
		if (pid < 0 && pooled)
			pid = hand_to_pool(&pool, launch, bundle, listener, socket_path, &connection);
		if (pid < 0)
			pid = spawn_shim(launch, bundle, listener);
		close(listener);
		bool written = pid > 0 && write_serving_shim_pid(socket_path, pid) && write_shim_files(bundle, address, pid);
		/* The pooled shim serves the pod once told the pod is its (it ends, and unbinds the socket, without). */
		if (written && connection >= 0 &&
		    send(connection, POOL_SHIM_SERVE, strlen(POOL_SHIM_SERVE), MSG_NOSIGNAL) != (ssize_t)strlen(POOL_SHIM_SERVE))
			written = false;
		if (connection >= 0)
			close(connection);
		if (!written) {
			if (pid > 0)
				kill(pid, SIGKILL);
			unlink(socket_path);
			return;
		}
	}
	fputs(address, stdout);
	int status = fflush(stdout) == 0 ? 0 : 1;
	/* After the address: containerd goes on while the pool is topped up. */
	if (vm_pooled)
		pool_refill(&vm_pool);
	if (pooled && !took_vm)
		pool_refill(&pool);
	exit(status);
}
