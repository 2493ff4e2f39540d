/*
 * The cgroups a host agent made for each container, kept in a file of its sandbox directory (the agent's working
 * directory), `cgroups/ID`: one line `LEVELS PATH` per directory, the leaf PATH and the LEVELS-1 parents above it
 * that the agent made. The agent removes them itself at `delete` and `shutdown`; the file is for the host, which
 * removes them when the agent cannot any more (killed with SIGKILL). Nothing is kept in a microVM.
 */
#pragma once

#include <stdbool.h>

/* Adds a line (`LEVELS PATH\n`) to the container's record, which the first line starts anew; logs a failure. The
 * host reads only whole lines: one cut short by the agent's death is left out. */
void cgroup_record_add(const char *id, const char *line, bool first);
/* Removes the container's record, once its directories are gone. */
void cgroup_record_drop(const char *id);
