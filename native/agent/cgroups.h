/*
 * A container's cgroups, made as runc's cgroupfs managers make them (runtime-spec config-linux.md "Control
 * groups"): with cgroup v1, one directory per mounted controller; where /sys/fs/cgroup is cgroup2 (unified),
 * one directory. An absolute path is taken from each hierarchy's mount point, a relative one from the agent's
 * own cgroup in that hierarchy. The values to write come resolved from the host (PROTOCOL.md, `cgroup_set`).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct cgroups;

/*
 * Makes the container's directories: PATH as given, or NULL for the default, runbox/ID (runbox/ID@AGENT_PID
 * when another container holds that one). With v1 hierarchies, cgroup2_mount (NULL: none) names a cgroup2
 * mount (a hybrid host's /sys/fs/cgroup/unified) where a directory is made and joined too, for the device
 * program (device_filter.h). NULL where the host has no cgroup hierarchy at all; on failure NULL with a message
 * in err (and nothing left behind); err is empty when NULL means "no hierarchy".
 */
struct cgroups *cgroups_create(const char *id, const char *path, const char *cgroup2_mount, char *err, size_t errlen);
/* Writes every `cgroup_set` record of r; -1 with errno and a message in err. */
int cgroups_apply(struct cgroups *cg, const struct records *r, char *err, size_t errlen);
/* Moves the calling process into every directory (for a child before it execs), but the cgroup2 one if it started
 * there (in_unified); -1 with errno, *failed says where. */
int cgroups_join(const struct cgroups *cg, bool in_unified, const char **failed);
/* The container's cgroup2 directory, opened (close-on-exec) for a child to start in, or -1. */
int cgroups_open_unified(const struct cgroups *cg);
/* The container's cgroup2 directory (cgroup v2, or cgroup2_mount's), or NULL. */
const char *cgroups_unified(const struct cgroups *cg);
/* The v1 freezer directory (pause/resume), or NULL. */
const char *cgroups_freezer(const struct cgroups *cg);
/* Readable when the memory controller may have OOM-killed a task: an eventfd (v1) or inotify fd (v2); -1: none. */
int cgroups_oom_fd(const struct cgroups *cg);
/* Consumes what oom_fd says; the number of OOM kills since the last call (1 for a notification while the tasks
 * wait under_oom, the OOM killer disabled). */
uint64_t cgroups_oom_kills(struct cgroups *cg);
/* Whether the OOM killer has acted in the container's memory cgroup since it was made; limit: the limit written. */
bool cgroups_oom_killed_since_create(const struct cgroups *cg, char *limit, size_t len);
/* Removes the directories (later, by cgroups_retry_removals, while their last tasks are being reaped); frees cg. */
void cgroups_destroy(struct cgroups *cg);
/* Retries the removals that had to wait; true while some still wait (each is given up after 10 s). */
bool cgroups_retry_removals(void);
