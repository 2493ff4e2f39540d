#define _GNU_SOURCE
#include "atomic-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facts.h"
#include "util.h"

bool atomic_temporary_path(char *out, size_t len, const char *path)
{
	int n = snprintf(out, len, ATOMIC_TEMPORARY, path, (int)getpid());
	return n >= 0 && (size_t)n < len;
}

int write_file_via(const char *temporary, const char *path, const char *text, mode_t mode, const char **failed)
{
	const char *call = "open";
	int saved, fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		goto fail;
	call = "write";
	if (write_all(fd, text, strlen(text)) < 0 || fchmod(fd, mode) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		goto remove;
	}
	call = "close";
	if (close(fd) < 0)
		goto remove;
	call = "rename";
	if (rename(temporary, path) == 0)
		return 0;
remove:
	saved = errno;
	unlink(temporary);
	errno = saved;
fail:
	if (failed)
		*failed = call;
	return -1;
}

int write_file_atomic(const char *path, const char *text, mode_t mode, const char **failed)
{
	char temporary[4200];
	if (!atomic_temporary_path(temporary, sizeof temporary, path)) {
		errno = ENAMETOOLONG;
		if (failed)
			*failed = "open";
		return -1;
	}
	return write_file_via(temporary, path, text, mode, failed);
}
