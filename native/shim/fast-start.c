/*
 * `start` over ttrpc, as src/shim/shim-start.ts does it: the socket of the container's group at
 * /run/containerd/s/<sha256(address/namespace/group)>; if a shim already serves it, that shim serves this
 * container too; otherwise the socket is bound (mode 0600, renamed into place from a private directory) and
 * the long-running shim is started in Node, detached, with it as fd 3. Prints the address and nothing else.
 * Whatever goes wrong here is left to the TypeScript `start`, which tries again and reports it in its words.
 */
#define _GNU_SOURCE
#include "shim-launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomic-file.h"
#include "config-group.h"
#include "facts.h"
#include "sha256.h"
#include "small-file.h"
#include "unix-socket.h"
#include "util.h"

#define CONFIG_LIMIT (16 << 20)
#define GROUP_MAX 256

static void discard_runtime_options(void)
{
	char buffer[4096];
	for (;;) {
		ssize_t n = read(0, buffer, sizeof buffer);
		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		return;
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

/* Starts `node ENTRY -namespace … -bundle DIR` detached with the socket as SHIM_INHERITED_FD; its pid, or -1. */
static pid_t spawn_shim(const struct launch *launch, const char *bundle, int listener)
{
	const struct shim_flags *flags = &launch->flags;
	char log_path[4096];
	int log = join_path(log_path, sizeof log_path, bundle, BUNDLE_LOG_FIFO)
		? open(log_path, O_RDWR | O_NONBLOCK | O_APPEND | O_CLOEXEC)
		: -1;
	if (log < 0)
		log = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int report[2];
	if (log < 0 || null < 0 || pipe2(report, O_CLOEXEC) != 0)
		return -1;

	const char *argv[16] = { "node", launch->node_entry, "-namespace", flags->namespace, "-id", flags->id,
				 "-address", flags->address ? flags->address : "", "-publish-binary",
				 flags->publish_binary ? flags->publish_binary : "", "-bundle", bundle };
	if (flags->debug)
		argv[12] = "-debug";

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
	discard_runtime_options();

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

	if (unix_socket_served(socket_path)) {
		/* Another container of the same group: its shim serves this one too. */
		if (!write_shim_files(bundle, address, serving_shim_pid(socket_path)))
			return;
	} else {
		int listener = unix_listen_private(socket_path);
		if (listener < 0)
			return;
		pid_t pid = spawn_shim(launch, bundle, listener);
		close(listener);
		if (pid < 0 || !write_serving_shim_pid(socket_path, pid) || !write_shim_files(bundle, address, pid)) {
			if (pid > 0)
				kill(pid, SIGKILL);
			unlink(socket_path);
			return;
		}
	}
	fputs(address, stdout);
	exit(fflush(stdout) == 0 ? 0 : 1);
}
