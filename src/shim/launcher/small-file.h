#ifndef RUNBOX_SMALL_FILE_H
#define RUNBOX_SMALL_FILE_H
#include <stddef.h>

/*
 * path's contents with a NUL after them (malloc), or NULL; at most limit bytes (more is treated as unreadable).
 * A regular file only, read to its end, so /proc files (whose size says 0) read too. Both launchers use it.
 */
char *read_small_file(const char *path, size_t limit, size_t *length);

#endif
