/*
 * Processes after they run: reaping (the agent is their parent, and a subreaper for what they leave), exit
 * bookkeeping (waiters, exit events), and the ops that look at or signal a container's processes.
 */
#pragma once
#include <stddef.h>
#include <sys/types.h>

#include "registry.h"
#include "request.h"

/* Reaps every child that has exited (after SIGCHLD). */
void reaper_reap(void);
/* Records the exit of a process reaped elsewhere (caller_reaps.h) as if the agent had reaped it. */
void reaper_exited(pid_t pid, int status);
/* Records the exits reaped before their process was known (call after each round of the loop). */
void reaper_replay(void);
/* Every process of the container: its pid namespace's if it has its own, else its freezer cgroup's, else
 * the init, the exec'd processes and their descendants. */
size_t container_pids(const struct container *c, pid_t **pids);
void proc_kill_container(const struct container *c, int sig);

void op_wait(struct request *r);
void op_signal(struct request *r);
void op_ps(struct request *r);
void op_stats(struct request *r);
