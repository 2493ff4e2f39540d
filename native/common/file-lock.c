#define _GNU_SOURCE
#include "file-lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Locks fd, or closes it: fd, or -1 with errno. */
static int lock_fd(int fd, int operation)
{
	if (fd < 0)
		return -1;
	int rc;
	do
		rc = flock(fd, operation);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return fd;
	int saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int file_lock(const char *path, bool wait)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	return lock_fd(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB);
}

int file_lock_existing(const char *path)
{
	int fd = lock_fd(open(path, O_RDONLY | O_CLOEXEC), LOCK_EX);
	struct stat st;
	if (fd < 0 || (fstat(fd, &st) == 0 && st.st_nlink > 0))
		return fd;
	close(fd);
	errno = ENOENT;
	return -1;
}
