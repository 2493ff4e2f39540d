/* Unix stream sockets as src/host/unix-socket.ts makes them: reached at a path of any length, bound with mode 0600. */
#pragma once
#include <stdbool.h>

/*
 * A socket (close-on-exec) connected to the one at path, or -1 with errno. A path longer than a sockaddr_un holds
 * is reached through its directory, open for the moment of connect(2) as /proc/self/fd/N.
 */
int unix_connect(const char *path);

/* Whether something accepts connections on the socket at path. */
bool unix_socket_served(const char *path);

/*
 * A listening socket (close-on-exec) at path, mode 0600 from the moment anyone else can reach it: bound in a fresh
 * private directory beside path (made 0700 with its parents if missing), then renamed onto path, replacing a stale
 * socket there; -1 when path holds something else than a socket or anything fails (nothing is left behind then).
 */
int unix_listen_private(const char *path);
