/* The unix-socket transport: a filesystem socket (mode 0600) whose every accepted stream is a connection. */
#pragma once
#include <stddef.h>

/* Binds and listens on path (which must not exist); 0, or -1 with a message in err. */
int listener_open(const char *path, char *err, size_t errlen);
/* Stops listening and removes the socket file. */
void listener_close(void);
