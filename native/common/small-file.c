#define _GNU_SOURCE
#include "small-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

char *read_small_file(const char *path, size_t limit, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	size_t cap = 4096, used = 0;
	char *text = malloc(cap);
	while (text) {
		if (used == cap - 1) {
			if (cap > limit) {
				errno = EFBIG;
				break;
			}
			char *bigger = realloc(text, cap * 2);
			if (!bigger)
				break;
			text = bigger;
			cap *= 2;
		}
		ssize_t n = read(fd, text + used, cap - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (n == 0) {
			if (used > limit) {
				errno = EFBIG;
				break;
			}
			close(fd);
			text[used] = 0;
			if (len)
				*len = used;
			return text;
		}
		used += (size_t)n;
	}
	int saved = errno;
	close(fd);
	free(text);
	errno = saved;
	return NULL;
}
