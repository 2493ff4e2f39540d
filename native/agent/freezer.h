/* pause/resume with the cgroup v1 freezer, in the container's freezer cgroup (cgroups.h). */
#pragma once
#include <stdbool.h>

bool freezer_available(void);
/* Freezes or thaws, waiting until the state has settled; -1 with errno. */
int freezer_set(const char *path, bool frozen);
