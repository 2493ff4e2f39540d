/* Terminals for container processes: made inside the container, handed over by SCM_RIGHTS. */
#pragma once
#include <stddef.h>

#include "spec.h"

/*
 * Opens a pty from the container's /dev/ptmx (so it belongs to the devpts the container mounted), or from
 * /dev/pts/ptmx. Returns the master (close-on-exec) and the slave in *slave; -1 with errno on failure.
 */
int pty_open(int *slave, char *name, size_t namelen);
void pty_set_size(int fd, unsigned short width, unsigned short height);
/* Makes the slave this process's controlling terminal (the process is a session leader) and its 0, 1, 2. */
int pty_make_controlling(int slave);
/*
 * In a container process with terminal=1 (a session leader, after pivot_root or setns): makes the pty, its
 * controlling terminal and stdio, and sends the master to the console socket. Returns the master when the
 * agent relays it instead (no console socket), else -1. Failures go through child_fail.
 */
int pty_setup_process(const struct procspec *p, int console_fd);
