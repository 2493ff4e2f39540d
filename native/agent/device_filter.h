/*
 * A container's device rules on cgroup v2 (PROTOCOL.md, `cgroup_device_default` and `cgroup_device`): an eBPF
 * program of type BPF_PROG_TYPE_CGROUP_DEVICE, made from the rules as runc's devicefilter makes it, loaded with
 * bpf(2) and attached to the container's cgroup2 directory, where the kernel runs it on every open and mknod of
 * a device node by the processes in it (whatever controllers the hierarchy has).
 */
#pragma once
#include <stddef.h>

#include "frame.h"

/*
 * Loads the program the records of r describe and attaches it to the cgroup2 directory dir (BPF_F_ALLOW_MULTI),
 * then detaches the device programs that were attached there before, as runc does. 0, also when r asks for no
 * program; -1 with errno and a message in err (the verifier's log included when it refuses the program).
 */
int device_filter_attach(const struct records *r, const char *dir, char *err, size_t errlen);
/* Whether the records of r ask for a device program. */
int device_filter_wanted(const struct records *r);
