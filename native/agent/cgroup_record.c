#define _GNU_SOURCE
#include "cgroup_record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facts.h"
#include "log.h"
#include "util.h"
#include "vm.h"

/* The record's path for an id that can be a file name (the host's ids always can). */
static bool record_path(const char *id, char *out, size_t len)
{
	if (vm_mode || !*id || strchr(id, '/') || !strcmp(id, ".") || !strcmp(id, ".."))
		return false;
	return snprintf(out, len, CGROUP_RECORD_DIR "/%s", id) < (int)len;
}

void cgroup_record_add(const char *id, const char *line, bool first)
{
	char path[512];
	if (!record_path(id, path, sizeof path))
		return;
	/* Appended to, not replaced: on ext4 a rename over the previous record waits for the new one's blocks to be
	 * allocated (auto_da_alloc), some 0.3 ms for each directory of a create. */
	int fd = -1;
	if (mkdir(CGROUP_RECORD_DIR, 0700) == 0 || errno == EEXIST)
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (first ? O_TRUNC : O_APPEND), 0600);
	if (fd >= 0) {
		bool written = write_all(fd, line, strlen(line)) == 0;
		if (close(fd) == 0 && written)
			return;
	}
	log_msg("cannot record the cgroups of %s in %s: %s", id, path, errtext(errno));
}

void cgroup_record_drop(const char *id)
{
	char path[512];
	if (record_path(id, path, sizeof path))
		unlink(path);
}
