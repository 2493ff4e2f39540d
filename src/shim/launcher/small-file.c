#include "small-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

char *read_small_file(const char *path, size_t limit, size_t *length) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return NULL;
    }
    size_t capacity = 4096, used = 0;
    char *text = malloc(capacity);
    while (text) {
        if (used == capacity - 1) {
            char *bigger = capacity <= limit ? realloc(text, capacity *= 2) : NULL;
            if (!bigger) break;
            text = bigger;
        }
        ssize_t n = read(fd, text + used, capacity - 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        if (n == 0) {
            if (used > limit) break;
            close(fd);
            text[used] = '\0';
            if (length) *length = used;
            return text;
        }
        used += (size_t)n;
    }
    close(fd);
    free(text);
    return NULL;
}
