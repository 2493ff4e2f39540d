#define _GNU_SOURCE
#include "freezer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define FREEZER_ROOT "/sys/fs/cgroup/freezer"

bool freezer_available(void)
{
	return access(FREEZER_ROOT "/freezer.state", F_OK) == 0 || access(FREEZER_ROOT "/cgroup.procs", F_OK) == 0;
}

char *freezer_create(const char *id)
{
	if (!freezer_available())
		return NULL;
	/* Ids are unique per state root only: the agent's pid keeps two sandboxes' containers apart. */
	char path[4096];
	snprintf(path, sizeof path, FREEZER_ROOT "/runbox/%s@%d", id, getpid());
	if (mkdir_all(path, 0755) < 0) {
		log_msg("container %s: cannot create the freezer cgroup %s: %s", id, path, errtext(errno));
		return NULL;
	}
	return xstrdup(path);
}

static int read_state(const char *file, char *state, size_t len)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, state, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	state[n] = 0;
	state[strcspn(state, "\n")] = 0;
	return 0;
}

int freezer_set(const char *path, bool frozen)
{
	char file[4096], state[32];
	const char *want = frozen ? "FROZEN" : "THAWED";
	snprintf(file, sizeof file, "%s/freezer.state", path);
	/* FREEZING may last while tasks are busy in the kernel: ask again until it settles (1 s at most). */
	for (int i = 0; i < 1000; i++) {
		if (write_file(file, want) < 0 || read_state(file, state, sizeof state) < 0)
			return -1;
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

/* Cgroups whose last tasks were still exiting (zombies count) when their container was forgotten. */
static char **leftovers;
static size_t nleftovers;
static uint64_t leftovers_since;

void freezer_remove(const char *path)
{
	if (rmdir(path) == 0 || errno == ENOENT)
		return;
	if (errno != EBUSY) {
		log_msg("cannot remove the cgroup %s: %s", path, errtext(errno));
		return;
	}
	if (!nleftovers)
		leftovers_since = now_mono_ms();
	leftovers = xrealloc(leftovers, (nleftovers + 1) * sizeof *leftovers);
	leftovers[nleftovers++] = xstrdup(path);
}

bool freezer_retry(void)
{
	size_t kept = 0;
	bool give_up = nleftovers && now_mono_ms() - leftovers_since > 10000;
	for (size_t i = 0; i < nleftovers; i++) {
		if (rmdir(leftovers[i]) == 0 || errno == ENOENT || give_up) {
			if (give_up)
				log_msg("cannot remove the cgroup %s: %s", leftovers[i], errtext(errno));
			free(leftovers[i]);
		} else {
			leftovers[kept++] = leftovers[i];
		}
	}
	nleftovers = kept;
	return nleftovers > 0;
}
