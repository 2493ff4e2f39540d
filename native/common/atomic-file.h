/* Files replaced whole, as src/host/atomic-file.ts replaces them: written beside their place, then renamed onto it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ATOMIC_TEMPORARY (facts.h) for path and this process; false when it does not fit out. */
bool atomic_temporary_path(char *out, size_t len, const char *path);

/*
 * Writes text to temporary (mode, whatever the umask), then renames it onto path: readers see the old text or the
 * new, never a part. Not flushed to disk. On failure the temporary file is removed and -1 returned with errno;
 * *failed (when given) names the call that failed: "open", "write", "close" or "rename".
 */
int write_file_via(const char *temporary, const char *path, const char *text, mode_t mode, const char **failed);

/* write_file_via through atomic_temporary_path's file. */
int write_file_atomic(const char *path, const char *text, mode_t mode, const char **failed);
