#define _GNU_SOURCE
#include "container-record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "small-file.h"
#include "utf8-text.h"
#include "util.h"

/* Bigger than any state.json or config.json runbox writes; a bigger one is Node's to judge. */
#define FILE_LIMIT (64 << 20)

/* The members of one object that a reading asks for, by name; a name seen twice makes the reading unsure. */
struct wanted_member {
	const char *name;
	struct json_span *value;
};

struct member_reading {
	const struct wanted_member *wanted;
	size_t count;
	bool duplicate;
};

static bool take_wanted_member(struct json_reader *r, const char *key, bool key_fits, int depth, void *ctx)
{
	struct member_reading *reading = ctx;
	json_skip_space(r);
	const char *start = r->at;
	if (!json_skip_value(r, depth + 1))
		return false;
	for (size_t i = 0; key_fits && i < reading->count; i++) {
		if (strcmp(key, reading->wanted[i].name) != 0)
			continue;
		if (reading->wanted[i].value->start)
			reading->duplicate = true;
		*reading->wanted[i].value = (struct json_span){ start, (size_t)(r->at - start) };
	}
	return true;
}

/* Reads the object in span (the whole of it), filling the wanted members' spans. */
static bool read_members(struct json_span span, const struct wanted_member *wanted, size_t count)
{
	struct json_reader r = { span.start, span.start + span.len };
	struct member_reading reading = { wanted, count, false };
	for (size_t i = 0; i < count; i++)
		*wanted[i].value = (struct json_span){ NULL, 0 };
	if (!json_read_object(&r, 0, take_wanted_member, &reading))
		return false;
	json_skip_space(&r);
	return r.at == r.end && !reading.duplicate;
}

/* A string value, decoded, when it is one and fits. */
static bool span_string(struct json_span span, char *out, size_t len)
{
	if (!span.start || span.start[0] != '"')
		return false;
	struct json_reader r = { span.start, span.start + span.len };
	bool fits;
	return json_read_string(&r, out, len, &fits) && fits && r.at == r.end;
}

/* A positive integer in plain decimal, at most max. */
static bool span_integer(struct json_span span, int max, int *out)
{
	if (!span.start || span.len == 0 || span.len > 9 || span.start[0] == '0')
		return false;
	int value = 0;
	for (size_t i = 0; i < span.len; i++) {
		if (span.start[i] < '0' || span.start[i] > '9')
			return false;
		value = value * 10 + (span.start[i] - '0');
	}
	if (value > max)
		return false;
	*out = value;
	return true;
}

static bool span_is(struct json_span span, const char *text)
{
	return span.start && span.len == strlen(text) && memcmp(span.start, text, span.len) == 0;
}

/* No space between tokens: the text is JSON.stringify's, whose output reads back to the same text. */
static bool compact(const char *text, size_t len)
{
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			return false;
		}
	}
	return true;
}

static bool read_sandbox(struct json_span driver_span, struct json_span sandbox, struct container_record *record)
{
	char driver[16], handle_driver[16];
	struct json_span kind, socket, agent_pid, pid, start_time, dir, agent_ports;
	const struct wanted_member wanted[] = {
		{ "driver", &kind },
		{ "socket", &socket },
		{ "agentPid", &agent_pid },
		{ "pid", &pid },
		{ "startTime", &start_time },
		{ "dir", &dir },
		{ "agentPorts", &agent_ports },
	};
	if (!span_string(driver_span, driver, sizeof driver) || !sandbox.start || sandbox.start[0] != '{' ||
	    !read_members(sandbox, wanted, ARRAY_LEN(wanted)) || !span_string(kind, handle_driver, sizeof handle_driver) ||
	    strcmp(driver, handle_driver) != 0)
		return false;
	int unused;
	if (strcmp(driver, "emulated") == 0) {
		record->driver = DRIVER_EMULATED;
		return span_string(socket, record->socket, sizeof record->socket) && span_integer(agent_pid, 1 << 30, &unused);
	}
	if (strcmp(driver, "qemu") == 0) {
		record->driver = DRIVER_QEMU;
		return span_integer(pid, 1 << 30, &record->vm_pid) &&
		       span_string(start_time, record->vm_start_time, sizeof record->vm_start_time) &&
		       span_string(dir, record->vm_dir, sizeof record->vm_dir) && span_integer(agent_ports, 64, &record->agent_ports);
	}
	return false;
}

bool container_record_read(const char *path, const char *id, struct container_record *record)
{
	memset(record, 0, sizeof *record);
	record->text = read_small_file(path, FILE_LIMIT, &record->len);
	if (!record->text)
		return false;
	struct json_span driver, sandbox, pid_start_time;
	const struct wanted_member wanted[] = {
		{ "ociVersion", &record->oci_version },
		{ "id", &record->id },
		{ "status", &record->status },
		{ "pid", &record->pid },
		{ "pidStartTime", &pid_start_time },
		{ "bundle", &record->bundle },
		{ "rootfs", &record->rootfs },
		{ "created", &record->created },
		{ "owner", &record->owner },
		{ "annotations", &record->annotations },
		{ "driver", &driver },
		{ "sandbox", &sandbox },
	};
	char stored_id[1100];
	bool vouched = compact(record->text, record->len) && utf8_valid(record->text, record->len) &&
		       read_members((struct json_span){ record->text, record->len }, wanted, ARRAY_LEN(wanted)) &&
		       span_string(record->id, stored_id, sizeof stored_id) && strcmp(stored_id, id) == 0 &&
		       span_string(record->status, record->status_value, sizeof record->status_value) &&
		       span_integer(record->pid, 1 << 30, &record->pid_value) &&
		       span_string(pid_start_time, record->pid_start_time, sizeof record->pid_start_time) &&
		       /* The report's fields, copied as they are. */
		       record->oci_version.start && record->bundle.start && record->rootfs.start && record->created.start &&
		       record->owner.start && read_sandbox(driver, sandbox, record);
	if (!vouched)
		container_record_free(record);
	return vouched;
}

void container_record_free(struct container_record *record)
{
	free(record->text);
	record->text = NULL;
}

char *container_record_with_status(const struct container_record *record, const char *status)
{
	struct buf text = { 0 };
	size_t before = (size_t)(record->status.start - record->text);
	const char *after = record->status.start + record->status.len;
	buf_add(&text, record->text, before);
	buf_addf(&text, "\"%s\"", status);
	buf_add(&text, after, record->len - (size_t)(after - record->text));
	return text.data;
}

/* A hook list that runs nothing: absent, null or empty. */
static bool no_hooks(struct json_span span)
{
	return !span.start || span_is(span, "null") || span_is(span, "[]");
}

bool config_has_no_start_hooks(const char *path)
{
	size_t len;
	char *text = read_small_file(path, FILE_LIMIT, &len);
	if (!text)
		return false;
	struct json_span hooks, poststart, start_container;
	const struct wanted_member top[] = { { "hooks", &hooks } };
	const struct wanted_member kinds[] = { { "poststart", &poststart }, { "startContainer", &start_container } };
	bool none = utf8_valid(text, len) && read_members((struct json_span){ text, len }, top, ARRAY_LEN(top)) &&
		    (!hooks.start || hooks.start[0] != '{' ||
		     (read_members(hooks, kinds, ARRAY_LEN(kinds)) && no_hooks(poststart) && no_hooks(start_container)));
	free(text);
	return none;
}
