/*
 * Helpers for code that runs in a child the agent forked, before it execs: reporting a failure to the
 * agent (one line, then exit), waiting for the agent's go-ahead (reset_signals, util.h, undoes what the agent
 * set for itself).
 */
#pragma once
#include <stddef.h>

/* container_id NULL: keep the one set before (the sync fd moved). */
void child_init(int sync_fd, const char *container_id);
/* Reports "container ID: MESSAGE[: ERRTEXT]" (ERRTEXT when err is nonzero) with errno err, then exits. */
_Noreturn void child_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same without ": ERRTEXT" (the message says it all), still reporting errno err. */
_Noreturn void child_fail_plain(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Waits for the agent's message tag; exits if the agent is gone or says something else. */
char *child_expect(char tag, size_t *len);
/* Sends a message to the agent; exits if it cannot. */
void child_send(char tag, const void *data, size_t len, int pass_fd);
