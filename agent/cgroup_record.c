#define _GNU_SOURCE
#include "cgroup_record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "vm.h"

#define RECORD_DIR "cgroups"

/* The record's path for an id that can be a file name (the host's ids always can). */
static bool record_path(const char *id, char *out, size_t len)
{
	if (vm_mode || !*id || strchr(id, '/') || !strcmp(id, ".") || !strcmp(id, ".."))
		return false;
	return snprintf(out, len, RECORD_DIR "/%s", id) < (int)len;
}

void cgroup_record_save(const char *id, const char *text)
{
	char path[512];
	if (!record_path(id, path, sizeof path))
		return;
	static const char temporary[] = RECORD_DIR "/.saving";
	int fd = -1;
	if ((mkdir(RECORD_DIR, 0700) == 0 || errno == EEXIST) &&
	    (fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) >= 0 &&
	    write_all(fd, text, strlen(text)) == 0 && close(fd) == 0 && (fd = -1, rename(temporary, path) == 0))
		return;
	log_msg("cannot record the cgroups of %s in %s: %s", id, path, errtext(errno));
	if (fd >= 0)
		close(fd);
	unlink(temporary);
}

void cgroup_record_drop(const char *id)
{
	char path[512];
	if (record_path(id, path, sizeof path))
		unlink(path);
}
