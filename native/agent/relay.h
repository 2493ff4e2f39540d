/*
 * Relaying a process's stdio over the connection that made it (stdio=stream): its stdout and stderr pipes,
 * or one pty master, become STDOUT/STDERR frames keyed by the request id; STDIN frames are written to its
 * stdin. Output pauses while the connection is congested; stdin input pauses the connection while full.
 * If the connection goes away, output is read and dropped and stdin is closed.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay;

/* Takes the fds: in_fd is the write end of the process's stdin, out_fd/err_fd the read ends (-1: none). */
struct relay *relay_pipes(uint64_t conn, uint32_t id, int in_fd, int out_fd, int err_fd);
/* A pty master: output as STDOUT frames (STDERR only carries its EOF), STDIN frames go to the master. */
struct relay *relay_pty(uint64_t conn, uint32_t id, int master);

bool relay_matches(const struct relay *r, uint64_t conn, uint32_t id);
bool relay_on_conn(const struct relay *r, uint64_t conn);
/* Queues stdin; an empty write closes stdin once what is queued is written. */
void relay_stdin(struct relay *r, const void *data, size_t len);
bool relay_stdin_full(const struct relay *r);
/* Sets the window size of a relayed pty; -1 if this relay has none. */
int relay_resize(struct relay *r, unsigned short width, unsigned short height);
/* The process has exited: relays what its pipes still hold, then EOF on both streams, and stops. */
void relay_finish(struct relay *r);
/* The connection is gone. */
void relay_detach(struct relay *r);
void relay_free(struct relay *r);
