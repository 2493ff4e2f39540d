/*
 * One connection to a sandbox's agent (agent/PROTOCOL.md), made as the drivers' connect makes it: the emulated
 * agent's unix socket, or a leased virtio-serial port of a microVM once the agent has greeted on it
 * (src/drivers/qemu/qemu-agent-port.ts). Requests go one at a time; the answer's error is given in the words the
 * Node client (agent-client.ts) would reject with.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct agent_session {
	int fd;
	int lease_fd;	  /* the port's lock (qemu), or -1 */
	struct buf in;	  /* bytes received and not yet taken */
	char broken[128]; /* once the connection failed: why, as AgentClient says it */
};

/* Each gives false (nothing held) when the agent cannot be reached at once. */
bool agent_connect_socket(struct agent_session *s, const char *path);
bool agent_connect_vm_port(struct agent_session *s, const char *dir, int ports);

enum call_result { CALL_OK, CALL_ERROR, CALL_BROKEN };

/*
 * Sends one request (records: NUL-terminated key=value pairs, as record_add makes them) and waits for its answer.
 * With CALL_ERROR or CALL_BROKEN, *message (malloc) says what went wrong.
 */
enum call_result agent_call(struct agent_session *s, uint32_t id, const struct buf *records, char **message);

/* Drops the connection (and the port's lease after it). */
void agent_close(struct agent_session *s);
