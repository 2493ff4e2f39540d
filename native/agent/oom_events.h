/* OOM events: the host learns (EVENT `oom`) when the kernel's OOM killer acted in a container's memory cgroup. */
#pragma once

struct container;

/* Starts watching the container's memory cgroup, if it has one. */
void oom_watch_container(struct container *c);
/* Sends an `oom` event if the OOM killer acted since the last look; called before each exit is told too, so
 * that the event precedes the exit of the process it killed. */
void oom_report(struct container *c);
