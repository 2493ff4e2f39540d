/*
 * A container's state.json (src/runtime/state-store.ts), read only when this reader can vouch for every field
 * `start` needs: the text JSON.stringify wrote (compact, well-formed UTF-8, strict JSON, no duplicate field),
 * the fields of the right types, and the sandbox handle of a driver handled here.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "json-reader.h"

enum record_driver { DRIVER_EMULATED, DRIVER_QEMU };

struct container_record {
	char *text;
	size_t len;
	struct json_span oci_version, id, pid, status, bundle, rootfs, created, owner, annotations;
	char status_value[16];
	int pid_value;
	char pid_start_time[32];
	enum record_driver driver;
	/* emulated: the agent's socket. qemu: the VM's pid and start time, its directory and agent ports. */
	char socket[4096];
	int vm_pid;
	char vm_start_time[32];
	char vm_dir[4096];
	int agent_ports;
};

/* Reads path for the container id; false when it cannot be read or vouched for (Node decides then). */
bool container_record_read(const char *path, const char *id, struct container_record *record);
void container_record_free(struct container_record *record);

/* The record's text with its status changed: what JSON.stringify(record) gives once Node sets it (malloc). */
char *container_record_with_status(const struct container_record *record, const char *status);

/* Whether config.json's text has no poststart and no startContainer hook; false when it cannot be read. */
bool config_has_no_start_hooks(const char *path);
