/*
 * A container's first cgroup migration waits for an RCU grace period, some 5-15 ms: the kernel takes
 * cgroup_threadgroup_rwsem for writing only after one, unless another migration ended moments before. Moving a
 * process into the cgroup it is already in pays that wait where nothing waits on it (the launcher, while the
 * worker and the agent prepare the create), so that the agent's migration of the container finds it passed.
 */
#pragma once

/* Writes this process into its own cgroup v2 cgroup (the unified hierarchy, hybrid or not); as root only, and
 * nothing changes whether it works or not. Blocks for the grace period. */
void prime_cgroup_migration(void);
