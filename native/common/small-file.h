/* Whole small files read into memory, for the launchers' JSON and /proc reads. */
#pragma once
#include <stddef.h>

/*
 * path's contents with a NUL after them (malloc), or NULL with errno; at most limit bytes (more is treated as
 * unreadable, EFBIG). A regular file only, read to its end, so /proc files (whose size says 0) read too. For a
 * value that fits a buffer of the caller's, read_file (util.h) reads it in one read(2).
 */
char *read_small_file(const char *path, size_t limit, size_t *len);
