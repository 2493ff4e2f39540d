/*
 * `delete` when there is nothing to clean up, which is the normal end of every container: the shim deleted its
 * task (BUNDLE/runbox-shim.json is gone with the rootfs mount) and either exited, taking its socket with it, or
 * still serves other containers of its group. Anything else — a record left by a shim that was killed, a stale
 * socket, a rootfs still mounted — is cleaned up by src/shim/shim-delete.ts.
 */
#define _GNU_SOURCE
#include "shim-launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "facts.h"
#include "small-file.h"
#include "unix-socket.h"
#include "util.h"

static bool absent(const char *bundle, const char *name)
{
	char path[4096];
	struct stat st;
	return join_path(path, sizeof path, bundle, name) && lstat(path, &st) != 0 && errno == ENOENT;
}

static bool is_mount_point(const char *path)
{
	struct statx stx;
	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) != 0)
		return errno != ENOENT;
	/* Without the attribute (kernels before 5.8) nobody can tell here: say yes, and let Node look. */
	return !(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) || (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* Whether the shim named in BUNDLE/address is gone without a trace, or still serving; false if unsure. */
static bool shim_gone_or_serving(const char *bundle, bool *serving)
{
	char path[4096];
	*serving = false;
	if (!join_path(path, sizeof path, bundle, BUNDLE_ADDRESS_FILE))
		return false;
	char *address = read_small_file(path, 4096, NULL);
	if (!address)
		return errno == ENOENT;
	char *socket_path = strncmp(address, "unix://", 7) == 0 ? address + 7 : address;
	socket_path = strtok(socket_path, "\n");
	struct stat st;
	bool gone = !socket_path || (lstat(socket_path, &st) != 0 && errno == ENOENT);
	if (!gone && socket_path)
		*serving = unix_socket_served(socket_path);
	free(address);
	return gone || *serving;
}

static size_t put_varint(uint8_t *out, uint64_t value)
{
	size_t n = 0;
	do {
		out[n++] = (uint8_t)((value & 0x7f) | (value > 0x7f ? 0x80 : 0));
		value >>= 7;
	} while (value);
	return n;
}

/* containerd.task.v2.DeleteResponse{exit_status: KILLED_EXIT_STATUS, exited_at: now}: field 2 (varint), field 3 (Timestamp). */
static size_t delete_response(uint8_t *out)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint8_t timestamp[24];
	size_t timestamp_len = 0;
	timestamp[timestamp_len++] = 0x08;
	timestamp_len += put_varint(timestamp + timestamp_len, (uint64_t)now.tv_sec);
	if (now.tv_nsec) {
		timestamp[timestamp_len++] = 0x10;
		timestamp_len += put_varint(timestamp + timestamp_len, (uint64_t)now.tv_nsec);
	}
	size_t n = 0;
	out[n++] = 0x10;
	n += put_varint(out + n, KILLED_EXIT_STATUS);
	out[n++] = 0x1a;
	out[n++] = (uint8_t)timestamp_len;
	memcpy(out + n, timestamp, timestamp_len);
	return n + timestamp_len;
}

void fast_delete(const struct launch *launch)
{
	char cwd[4096], rootfs[4096];
	const char *bundle = launch->flags.bundle;
	if (!bundle && !(bundle = getcwd(cwd, sizeof cwd)))
		return;
	if (!absent(bundle, BUNDLE_RECORD_FILE))
		return;
	bool serving;
	if (!shim_gone_or_serving(bundle, &serving))
		return;
	if (!serving && (!join_path(rootfs, sizeof rootfs, bundle, "rootfs") || is_mount_point(rootfs)))
		return;
	uint8_t response[64];
	size_t len = delete_response(response);
	exit(fwrite(response, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1);
}
