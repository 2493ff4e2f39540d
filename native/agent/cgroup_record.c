#define _GNU_SOURCE
#include "cgroup_record.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic-file.h"
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

void cgroup_record_save(const char *id, const char *text)
{
	char path[512];
	if (!record_path(id, path, sizeof path))
		return;
	/* A dot file: the host reads every other name there as a record. */
	static const char temporary[] = CGROUP_RECORD_DIR "/.saving";
	if ((mkdir(CGROUP_RECORD_DIR, 0700) == 0 || errno == EEXIST) && write_file_via(temporary, path, text, 0600, NULL) == 0)
		return;
	log_msg("cannot record the cgroups of %s in %s: %s", id, path, errtext(errno));
}

void cgroup_record_drop(const char *id)
{
	char path[512];
	if (record_path(id, path, sizeof path))
		unlink(path);
}
