/*
 * A container's seccomp agent (config.json's linux.seccomp.listenerPath, PROTOCOL.md "Seccomp"): each of the
 * container's processes whose filter has SCMP_ACT_NOTIFY rules sends the filter's listener to the agent, which
 * hands it to the seccomp agent listening at listenerPath with the container process state (runtime-spec
 * runtime.md), as runc does.
 */
#pragma once
#include <stddef.h>
#include <sys/types.h>

#include "frame.h"

struct seccomp_listener;

/* The `seccomp_listener*` records of r: NULL with err empty when there are none, NULL with a message in err when
 * they are malformed. */
struct seccomp_listener *seccomp_listener_parse(const struct records *r, char *err, size_t errlen);
void seccomp_listener_free(struct seccomp_listener *l);
/*
 * Connects to listenerPath and sends the ContainerProcessState of the process pid (status: the container's, as
 * runc gives it: `creating` for the init, `running` for an exec'd process; init_pid: the container's pid) with
 * the listener fd (SCM_RIGHTS). 0, or -1 with errno and a message in err.
 */
int seccomp_listener_send(const struct seccomp_listener *l, int fd, const char *status, pid_t pid, pid_t init_pid,
			  char *err, size_t errlen);
