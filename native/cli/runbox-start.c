/*
 * runbox-start: what bin/runbox execs for `runbox start` instead of Node. A start is a lock, two small files and
 * one request to the sandbox's agent, a few milliseconds; Node alone takes about 100 ms to reach the CLI's code,
 * while the created container waits. This does the common case exactly as Runtime.start does it
 * (src/runtime/runtime.ts) and runs `node ENTRY ARG...` for everything else, before it has changed anything:
 * arguments it does not know, a container that is not `created` with its init alive, a state.json or
 * config.json it cannot vouch for, poststart or startContainer hooks, an agent it cannot reach at once. The Node
 * path then reports whatever is wrong in its own words.
 *
 *   runbox-start ENTRY [runc's global flags] start ID
 *
 * Once the start request is sent, the outcome is this program's: a refused start stops the container as
 * Runtime.start's catch does (SIGKILL to all its processes, status `stopped`, the error).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-session.h"
#include "atomic-file.h"
#include "cli-log.h"
#include "container-record.h"
#include "facts.h"
#include "file-lock.h"
#include "frame.h"
#include "node-exec.h"
#include "process-identity.h"
#include "small-file.h"
#include "util.h"

/* What this run holds, given up before Node takes over. */
struct held {
	int lock_fd;
	struct container_record record;
	struct agent_session session;
};

static const char *node_entry;
static int node_argc;
static char **node_argv;

static _Noreturn void run_node(struct held *held)
{
	if (held) {
		agent_close(&held->session);
		container_record_free(&held->record);
		if (held->lock_fd >= 0)
			close(held->lock_fd);
	}
	exec_node(node_entry, node_argc, node_argv, "runbox", 127);
}

/* parseGlobalOptions (src/cli/global-options.ts), then exactly `start ID` or `start -- ID`; false for anything else. */
static bool parse_arguments(int argc, char **argv, struct cli_options *options, const char **id)
{
	static const char *const valued[] = { "root", "log", "log-format", "driver", "criu", "rootless" };
	int i = 0;
	for (; i < argc; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "--", 2) != 0 || !strcmp(arg, "--") || !strcmp(arg, "--help") || !strcmp(arg, "--version"))
			break;
		const char *equals = strchr(arg, '=');
		size_t name_len = equals ? (size_t)(equals - arg - 2) : strlen(arg + 2);
		const char *name = arg + 2;
#define NAMED(word) (name_len == strlen(word) && strncmp(name, word, name_len) == 0)
		if (NAMED("debug") || NAMED("systemd-cgroup"))
			continue;
		bool known = false;
		for (size_t v = 0; v < ARRAY_LEN(valued); v++)
			known = known || NAMED(valued[v]);
		if (!known)
			return false;
		const char *value = equals ? equals + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (!value)
			return false;
		/* An empty --root or --log is no flag at all, as the Node CLI takes it. */
		if (NAMED("root")) {
			options->root = *value ? value : NULL;
		} else if (NAMED("log")) {
			options->log = *value ? value : NULL;
		} else if (NAMED("log-format")) {
			if (strcmp(value, "json") != 0 && strcmp(value, "text") != 0)
				return false;
			options->json = !strcmp(value, "json");
		}
#undef NAMED
	}
	if (i == argc || strcmp(argv[i], "start") != 0)
		return false;
	/* After `--` an id may start with `-`, as with runc. */
	if (argc - i == 3 && !strcmp(argv[i + 1], "--")) {
		*id = argv[i + 2];
		return true;
	}
	if (argc - i != 2 || argv[i + 1][0] == '-')
		return false;
	*id = argv[i + 1];
	return true;
}

/* validateContainerId's ids (src/runtime/container-id.ts): letters, digits and _ + , - . (not . or .. alone). */
static bool plain_id(const char *id)
{
	size_t len = strlen(id);
	if (len == 0 || len > MAX_ID_LENGTH || !strcmp(id, ".") || !strcmp(id, ".."))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		bool alphanumeric = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alphanumeric && c != '_' && c != '+' && c != ',' && c != '-' && c != '.')
			return false;
	}
	return true;
}

/* The message of Node's fs errors (uvException): `CODE: description, syscall 'path'`. */
static char *fs_error(int err, const char *syscall, const char *path, const char *destination)
{
	struct buf message = { 0 };
	buf_addf(&message, "%s: %s, %s", strerrorname_np(err), errtext(err), syscall);
	if (path)
		buf_addf(&message, " '%s'", path);
	if (destination)
		buf_addf(&message, " -> '%s'", destination);
	return message.data;
}

/* The state store's writeFileAtomic (not flushed); NULL, or the error as Node gives it. */
static char *write_state(const char *path, const char *text)
{
	char temporary[4200];
	const char *failed;
	if (!atomic_temporary_path(temporary, sizeof temporary, path))
		return fs_error(ENAMETOOLONG, "open", path, NULL);
	if (write_file_via(temporary, path, text, 0600, &failed) == 0)
		return NULL;
	if (!strcmp(failed, "open"))
		return fs_error(errno, failed, temporary, NULL);
	if (!strcmp(failed, "rename"))
		return fs_error(errno, failed, temporary, path);
	return fs_error(errno, failed, NULL, NULL);
}

/* detailFor(error, id) for the agent's error (AgentError): its text less an exact `container ID: ` in front. */
static const char *without_container_prefix(const char *message, const char *id)
{
	size_t id_len = strlen(id);
	if (strncmp(message, "container ", 10) != 0 || strncmp(message + 10, id, id_len) != 0 ||
	    strncmp(message + 10 + id_len, ": ", 2) != 0)
		return message;
	return message + 10 + id_len + 2;
}

/*
 * Runtime.start's catch: every process of the container gets SIGKILL (whatever the agent answers), the record
 * says `stopped`, and the error names the container once. Gives the exit status.
 */
static int fail_start(struct held *held, const struct cli_options *options, const char *id, const char *state_path,
		      enum call_result result, char *why)
{
	if (result == CALL_ERROR) {
		struct buf kill_all = { 0 };
		char *ignored = NULL;
		record_add(&kill_all, "op", "signal");
		record_add(&kill_all, "id", id);
		record_add(&kill_all, "signal", "9");
		record_add(&kill_all, "all", "1");
		agent_call(&held->session, 2, &kill_all, &ignored);
		free(ignored);
		buf_free(&kill_all);
	}
	agent_close(&held->session);
	char *stopped = container_record_with_status(&held->record, "stopped");
	/* A state.json that cannot be written is the error then, as the fs error replaces Node's. */
	char *message = write_state(state_path, stopped);
	free(stopped);
	if (!message) {
		struct buf text = { 0 };
		buf_addf(&text, "container %s: %s", id, without_container_prefix(why ? why : "", id));
		message = text.data;
	}
	cli_report_error(options, message);
	free(message);
	free(why);
	container_record_free(&held->record);
	close(held->lock_fd);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: runbox-start ENTRY [ARG...]\n");
		return 2;
	}
	node_entry = argv[1];
	node_argc = argc - 2;
	node_argv = argv + 2;
	struct cli_options options = { 0 };
	const char *id;
	if (!parse_arguments(node_argc, node_argv, &options, &id) || !plain_id(id))
		run_node(NULL);

	struct held held = { .lock_fd = -1, .session = { .fd = -1, .lease_fd = -1 } };
	char dir[4200], path[4300];
	if (snprintf(dir, sizeof dir, "%s/%s", options.root ? options.root : DEFAULT_ROOT, id) >= (int)sizeof dir)
		run_node(NULL);

	/* The container lock (the state store's lock): held until this start is over, released by exit. */
	snprintf(path, sizeof path, "%s/" CONTAINER_LOCK_FILE, dir);
	held.lock_fd = file_lock_existing(path);
	if (held.lock_fd < 0)
		run_node(&held);

	snprintf(path, sizeof path, "%s/" CONTAINER_STATE_FILE, dir);
	struct container_record *record = &held.record;
	if (!container_record_read(path, id, record))
		run_node(&held);
	if (strcmp(record->status_value, "created") != 0 || !process_alive(record->pid_value, record->pid_start_time))
		run_node(&held);
	snprintf(path, sizeof path, "%s/config.json", dir);
	if (!config_has_no_start_hooks(path))
		run_node(&held);

	/* op=start and id (agent-sandbox.ts startContainer): no `state`, which only startContainer hooks read, and a
	 * container with those goes to Node. */
	struct buf request = { 0 };
	record_add(&request, "op", "start");
	record_add(&request, "id", id);
	bool connected = record->driver == DRIVER_EMULATED
		? agent_connect_socket(&held.session, record->socket)
		: process_alive(record->vm_pid, record->vm_start_time) &&
			  agent_connect_vm_port(&held.session, record->vm_dir, record->agent_ports);
	if (!connected) {
		buf_free(&request);
		run_node(&held);
	}

	char *why = NULL;
	enum call_result result = agent_call(&held.session, 1, &request, &why);
	buf_free(&request);
	snprintf(path, sizeof path, "%s/" CONTAINER_STATE_FILE, dir);
	if (result != CALL_OK)
		return fail_start(&held, &options, id, path, result, why);
	agent_close(&held.session);
	char *running = container_record_with_status(record, "running");
	char *error = write_state(path, running);
	free(running);
	int status = error ? 1 : 0;
	if (error)
		cli_report_error(&options, error);
	free(error);
	container_record_free(record);
	close(held.lock_fd);
	return status;
}
