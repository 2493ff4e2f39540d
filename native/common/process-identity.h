/* A host process named for good by its pid and start time, as src/host/host-process.ts names one. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* processStartTime: field 22 of /proc/PID/stat (clock ticks since boot) into out; false for no such live process
 * (gone, or a zombie) or when it does not fit. */
bool process_start_time(pid_t pid, char *out, size_t len);

/* isProcessAlive: whether pid still runs and started at start_time. */
bool process_alive(pid_t pid, const char *start_time);
