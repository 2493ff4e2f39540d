/* The last steps of any container process (init or exec'd), shared by both: cwd, rlimits, lookup, execve. */
#pragma once
#include "spec.h"

/* Changes to cwd, creating it if missing. */
void launch_chdir(const struct procspec *p);
/*
 * Finds the executable as execvp would, in the PATH of the process's env, with runc's messages:
 * exec: "NAME": executable file not found in $PATH, exec: "PATH": stat PATH: no such file or directory.
 */
char *launch_lookup(const struct procspec *p);
/* Starts reading the first few MiB of the executable at PATH into the page cache, without waiting (best effort):
 * for an init waiting for `start`, whose exec then finds its pages there (a microVM reads them from its disk). */
void launch_prefetch(const char *path);
void launch_rlimits(const struct procspec *p);
/*
 * Identity (creds.c), umask, closes every fd but 0-2 and the close-on-exec sync fd, installs the seccomp filter
 * (NULL: none) and execs; without no_new_privs the filter goes in before the identity (it needs CAP_SYS_ADMIN).
 */
struct seccomp_filter;
_Noreturn void launch_exec(const struct procspec *p, const char *path, int sync_fd, const struct seccomp_filter *filter);
