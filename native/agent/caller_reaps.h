/*
 * Processes the caller reaps, as runc's are: an agent booted for a detached `create` (RUNBOX_CALLER_REAPS=1 in
 * its environment) makes the container's init, and every process it starts detached later (an exec whose stdio
 * it does not stream), a child of its own parent instead of its own: the runtime CLI during create, and once
 * that has exited whatever adopted the agent. So when the CLI exits, the init is reparented to the caller's
 * subreaper (containerd's runc shim), which learns its exit status by reaping it. The agent watches such a
 * process through a pidfd: it learns that it exited, but not its status (recorded as 255, as containerd
 * reports an unknown one).
 */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

/* Whether this agent leaves detached processes to its caller (read once, at the first call). */
bool caller_reaps_enabled(void);
/*
 * fork(), or with `adopted` clone(CLONE_PARENT): the child belongs to the agent's parent. With a cgroup2 directory
 * (cgroup_fd >= 0), the child starts in it (clone3's CLONE_INTO_CGROUP) where the kernel can: *in_cgroup says
 * whether it did, in the parent and in the child; otherwise the child has to join it.
 */
pid_t caller_reaps_fork(bool adopted, int cgroup_fd, bool *in_cgroup);
/* In a forked child: whether it (or the process that cloned it) was forked adopted. Such a child sets no
 * parent-death signal: its parent is the caller, which exits long before it. */
bool caller_reaps_child(void);
/* Watches an adopted process; its exit is recorded as the reaper's are. 0, or -1 with errno. */
int caller_reaps_watch(pid_t pid);
