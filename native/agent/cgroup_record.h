/*
 * The cgroups a host agent made for each container, kept in a file of its sandbox directory (the agent's working
 * directory), `cgroups/ID`: one line `LEVELS PATH` per directory, the leaf PATH and the LEVELS-1 parents above it
 * that the agent made. The agent removes them itself at `delete` and `shutdown`; the file is for the host, which
 * removes them when the agent cannot any more (killed with SIGKILL). Nothing is kept in a microVM.
 */
#pragma once

/* Replaces the container's record with text (atomically: a temporary file renamed); logs a failure. */
void cgroup_record_save(const char *id, const char *text);
/* Removes the container's record, once its directories are gone. */
void cgroup_record_drop(const char *id);
