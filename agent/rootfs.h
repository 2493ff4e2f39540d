/*
 * The container's filesystem, set up by its init process in its own mount namespace: before the hooks
 * (mounts, devices), at pivot_root, and after it (sysctls, read-only and masked paths, read-only root).
 */
#pragma once
#include "spec.h"

/* Propagation of /, the rootfs bind-mounted on itself, the mount records in order, devices, /dev links. */
void rootfs_prepare(const struct ctrspec *s);
/* Makes the rootfs the root, and detaches the old one. */
void rootfs_pivot(const char *rootfs);
/* After the pivot: sysctls, then read-only paths, then masked paths. */
void rootfs_finish(const struct ctrspec *s);
void rootfs_make_readonly(void);
