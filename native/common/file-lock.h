/* flock(2) locks, as src/host/file-lock.ts takes them: the kernel drops one when its holder dies. */
#pragma once
#include <stdbool.h>

/*
 * The exclusive lock on path, made (mode 0600) when missing: its fd (close-on-exec; closing it unlocks), or -1
 * with errno. Without wait, a lock someone holds gives -1 with EWOULDBLOCK at once.
 */
int file_lock(const char *path, bool wait);

/*
 * The exclusive lock on a lock file that must already exist, as a container's does: -1 (errno ENOENT) when it does
 * not, or when it was unlinked while this process waited (its holder removed what it guarded).
 */
int file_lock_existing(const char *path);
