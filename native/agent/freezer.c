#define _GNU_SOURCE
#include "freezer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define FREEZER_ROOT "/sys/fs/cgroup/freezer"

bool freezer_available(void)
{
	return access(FREEZER_ROOT "/freezer.state", F_OK) == 0 || access(FREEZER_ROOT "/cgroup.procs", F_OK) == 0;
}

int freezer_set(const char *path, bool frozen)
{
	char file[4096], state[32];
	const char *want = frozen ? "FROZEN" : "THAWED";
	snprintf(file, sizeof file, "%s/freezer.state", path);
	/* FREEZING may last while tasks are busy in the kernel: ask again until it settles (1 s at most). */
	for (int i = 0; i < 1000; i++) {
		if (write_file(file, want) < 0 || read_file(file, state, sizeof state) < 0)
			return -1;
		state[strcspn(state, "\n")] = 0;
		if (!strcmp(state, want))
			return 0;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	if (frozen)
		write_file(file, "THAWED");
	errno = EBUSY;
	return -1;
}
