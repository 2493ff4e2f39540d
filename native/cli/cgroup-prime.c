#define _GNU_SOURCE
#include "cgroup-prime.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "small-file.h"

void prime_cgroup_migration(void)
{
	if (geteuid() != 0)
		return;
	char *text = read_small_file("/proc/self/cgroup", 1 << 16, NULL);
	if (!text)
		return;
	/* v2's line is "0::PATH"; a host with v1 hierarchies only has none, and is left alone. */
	char *line = !strncmp(text, "0::", 3) ? text : strstr(text, "\n0::");
	if (line) {
		char *path = line + (line == text ? 3 : 4);
		path[strcspn(path, "\n")] = 0;
		const char *mounts[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
		for (size_t i = 0; i < sizeof mounts / sizeof *mounts; i++) {
			char procs[4200];
			snprintf(procs, sizeof procs, "%s%s/cgroup.procs", mounts[i], strcmp(path, "/") ? path : "");
			int fd = open(procs, O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			ssize_t written = write(fd, "0", 1);
			close(fd);
			if (written == 1)
				break;
		}
	}
	free(text);
}
