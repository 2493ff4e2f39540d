#define _GNU_SOURCE
#include "unix-socket.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

/* somaxconn's default, as Node's listen asks for. */
#define BACKLOG 511

int unix_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int dir = -1;
	if (strlen(path) < sizeof addr.sun_path) {
		strcpy(addr.sun_path, path);
	} else {
		const char *slash = strrchr(path, '/');
		char *parent = slash ? strndup(path, (size_t)(slash - path)) : NULL;
		dir = parent ? open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
		free(parent);
		if (dir < 0 || snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/%s", dir, slash + 1) >=
				       (int)sizeof addr.sun_path) {
			if (dir >= 0)
				close(dir);
			errno = ENAMETOOLONG;
			return -1;
		}
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc = fd < 0 ? -1 : 0;
	if (fd >= 0) {
		do
			rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
		while (rc < 0 && errno == EINTR);
	}
	int saved = errno;
	if (rc < 0 && fd >= 0)
		close(fd);
	if (dir >= 0)
		close(dir);
	errno = saved;
	return rc < 0 ? -1 : fd;
}

bool unix_socket_served(const char *path)
{
	int fd = unix_connect(path);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int unix_listen_private(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return -1;
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return -1;
	char private_dir[4096];
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int n = snprintf(private_dir, sizeof private_dir, "%.*s", (int)(slash - path), path);
	if (n < 0 || (size_t)n >= sizeof private_dir || mkdir_all(private_dir, 0700) < 0 ||
	    snprintf(private_dir + n, sizeof private_dir - (size_t)n, "/.rpc-XXXXXX") >= (int)sizeof private_dir - n ||
	    !mkdtemp(private_dir))
		return -1;
	int fd = -1;
	if (snprintf(addr.sun_path, sizeof addr.sun_path, "%s/s", private_dir) < (int)sizeof addr.sun_path)
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool listening = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(fd, BACKLOG) == 0 &&
			 chmod(addr.sun_path, 0600) == 0 && rename(addr.sun_path, path) == 0;
	if (!listening) {
		if (fd >= 0)
			close(fd);
		if (addr.sun_path[0])
			unlink(addr.sun_path);
		fd = -1;
	}
	rmdir(private_dir);
	return fd;
}
