/*
 * The agent as a microVM's init (guest mode): what differs from a host process. The guest's own set-up is
 * guest.h's; this is the agent's side of it — stdio and the exit report over virtio-serial ports, the
 * container's rootfs from a disk, and when the VM powers off.
 *
 * Ports (named by the host, found by name): stdin, stdout, stderr (the caller's stdio for stdio=inherit, held
 * by QEMU on the host), exit (one line `EXIT_STATUS EXITED_AT_NS` when the container's init exits, written to a
 * host file by QEMU so that it outlives the VM), agent.N (ports.h).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "frame.h"
#include "registry.h"

extern bool vm_mode;

/* As pid 1: sets the guest up and installs the stdio ports as fds 0-2. Returns 0, or -1 after saying why. */
int vm_init(void);
/* The agent's own log in the VM: the console. */
int vm_log_fd(void);
/* `create` with `rootfs_image=DEVICE␟FSTYPE`: mounts it, writable, at the request's rootfs. 0 or -1 with err. */
int vm_prepare_rootfs(const struct records *rec, char *err, size_t errlen);
/*
 * `vm_restored`: this VM is a clone of a template snapshot (the host restored it instead of booting it): takes
 * the host's time (realtime_ns) and fresh entropy (hex), so that clones share neither the template's clock nor
 * its random state, and makes the inherited stdio streams the caller did not give (stdio_absent, repeated)
 * /dev/null, as a booted VM has them. 0, or -1 with err.
 */
int vm_restored(const struct records *rec, char *err, size_t errlen);
/* A container's init has exited: reports it on the exit port. */
void vm_init_exited(const struct proc *p);
/* Whether the VM has nothing left to do: every container's init has exited, or there is no container and no
 * host has been attached for a while (the host that booted it is gone). */
bool vm_done(void);
/* How long the main loop may sleep before vm_done() must be asked again, or a port that could not be reopened
 * tried again (-1: until something happens). */
int vm_poll_timeout(void);
_Noreturn void vm_power_off(void);
