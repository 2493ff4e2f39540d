/* pause/resume with the cgroup v1 freezer: one cgroup per container, /sys/fs/cgroup/freezer/runbox/ID. */
#pragma once
#include <stdbool.h>

bool freezer_available(void);
/* Creates the container's cgroup; its path (malloc'd), or NULL where there is no v1 freezer. */
char *freezer_create(const char *id);
/* Freezes or thaws, waiting until the state has settled; -1 with errno. */
int freezer_set(const char *path, bool frozen);
/* Removes the cgroup, or retries later (freezer_retry) while its last tasks are being reaped. */
void freezer_remove(const char *path);
/* Retries the removals that had to wait; true while some are still waiting (gives up after 10 s). */
bool freezer_retry(void);
