/*
 * The container's filesystem, set up by its init process in its own mount namespace (or, without one, in the
 * agent's, all of it inside the rootfs bind, which the agent detaches when the container goes): before the hooks
 * (mounts, devices), at pivot_root, and after it (sysctls, read-only and masked paths, read-only root).
 */
#pragma once
#include "spec.h"

/* Propagation of /, the rootfs bind-mounted on itself, the mount records in order, devices, /dev links. */
void rootfs_prepare(const struct ctrspec *s);
/* Makes the rootfs the root, and detaches the old one. */
void rootfs_pivot(const char *rootfs);
/* Without a mount namespace of its own: chroot into the rootfs (as runc does), the mounts staying the agent's. */
void rootfs_chroot(const char *rootfs);
/* In the agent, for a container that shared its mount namespace: detaches the rootfs bind and every mount in it. */
void rootfs_release(const char *rootfs);
/* After the pivot: sysctls, then read-only paths, then masked paths. */
void rootfs_finish(const struct ctrspec *s);
void rootfs_make_readonly(void);
