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
#include "agent-session.h"
#include "cli-log.h"
#include "container-record.h"
#include "small-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_ROOT "/run/runbox"
#define MAX_ID_LENGTH 255

/* What this run holds, given up before Node takes over. */
struct held {
    int lock_fd;
    struct container_record record;
    struct agent_session session;
};

static const char *node_entry;
static int node_argc;
static char **node_argv;

_Noreturn static void exec_node(struct held *held) {
    if (held) {
        agent_close(&held->session);
        container_record_free(&held->record);
        if (held->lock_fd >= 0) close(held->lock_fd);
    }
    char **argv = calloc((size_t)node_argc + 3, sizeof *argv);
    if (argv) {
        argv[0] = "node";
        argv[1] = (char *)node_entry;
        memcpy(argv + 2, node_argv, (size_t)node_argc * sizeof *argv);
        execvp("node", argv);
    }
    perror("runbox: cannot run node");
    exit(127);
}

/* parseGlobalOptions (src/cli/global-options.ts), then exactly `start ID` or `start -- ID`; false for anything else. */
static bool parse_arguments(int argc, char **argv, struct cli_options *options, const char **id) {
    static const char *const valued[] = {"root", "log", "log-format", "driver", "criu", "rootless"};
    int i = 0;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "--version") == 0) break;
        const char *equals = strchr(arg, '=');
        size_t name_length = equals ? (size_t)(equals - arg - 2) : strlen(arg + 2);
        const char *name = arg + 2;
#define NAMED(word) (name_length == strlen(word) && strncmp(name, word, name_length) == 0)
        if (NAMED("debug") || NAMED("systemd-cgroup")) continue;
        bool known = false;
        for (size_t v = 0; v < sizeof valued / sizeof valued[0]; v++) known = known || NAMED(valued[v]);
        if (!known) return false;
        const char *value = equals ? equals + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) return false;
        /* An empty --root or --log is no flag at all, as the Node CLI takes it. */
        if (NAMED("root")) options->root = *value ? value : NULL;
        else if (NAMED("log")) options->log = *value ? value : NULL;
        else if (NAMED("log-format")) {
            if (strcmp(value, "json") != 0 && strcmp(value, "text") != 0) return false;
            options->json = strcmp(value, "json") == 0;
        }
#undef NAMED
    }
    if (i == argc || strcmp(argv[i], "start") != 0) return false;
    /* After `--` an id may start with `-`, as with runc. */
    if (argc - i == 3 && strcmp(argv[i + 1], "--") == 0) {
        *id = argv[i + 2];
        return true;
    }
    if (argc - i != 2 || argv[i + 1][0] == '-') return false;
    *id = argv[i + 1];
    return true;
}

/*
 * validateContainerId's ids (src/runtime/container-id.ts), less those with a `+`: Runtime.start strips the
 * id from the front of an error message with a regular expression made of the id, where `+` is no literal.
 */
static bool plain_id(const char *id) {
    size_t length = strlen(id);
    if (length == 0 || length > MAX_ID_LENGTH || strcmp(id, ".") == 0 || strcmp(id, "..") == 0) return false;
    for (size_t i = 0; i < length; i++) {
        char c = id[i];
        bool alphanumeric = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alphanumeric && c != '_' && c != ',' && c != '-' && c != '.') return false;
    }
    return true;
}

/* processStartTime (src/host/host-process.ts) compared with the one recorded: isProcessAlive. */
static bool process_alive(int pid, const char *start_time) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    char *stat = read_small_file(path, 4096, NULL);
    if (!stat) return false;
    char *close_paren = strrchr(stat, ')');
    bool alive = false;
    if (close_paren && close_paren[1] == ' ') {
        char *fields = close_paren + 2, *field = fields;
        bool live_state = fields[0] != 'Z' && fields[0] != 'X';
        /* The state is field 3; the start time is field 22. */
        for (int n = 0; field && n < 19; n++) {
            field = strchr(field, ' ');
            if (field) field++;
        }
        if (field && live_state) {
            size_t field_length = strcspn(field, " ");
            alive = field_length == strlen(start_time) && strncmp(field, start_time, field_length) == 0;
        }
    }
    free(stat);
    return alive;
}

/* The message of Node's fs errors (uvException): `CODE: description, syscall 'path'`. */
static char *fs_error(const char *syscall, const char *path, const char *destination) {
    int error = errno;
    char description[256];
    snprintf(description, sizeof description, "%s", strerror(error));
    description[0] = (char)(description[0] >= 'A' && description[0] <= 'Z' ? description[0] + 32 : description[0]);
    char *message;
    int n = destination ? asprintf(&message, "%s: %s, %s '%s' -> '%s'", strerrorname_np(error), description, syscall, path, destination)
          : path ? asprintf(&message, "%s: %s, %s '%s'", strerrorname_np(error), description, syscall, path)
                 : asprintf(&message, "%s: %s, %s", strerrorname_np(error), description, syscall);
    return n < 0 ? NULL : message;
}

/* writeFileAtomic (src/runtime/atomic-file.ts) without the flush, as the state store uses it; NULL or the error. */
static char *write_state(const char *path, const char *text) {
    char temporary[4200];
    snprintf(temporary, sizeof temporary, "%s.tmp-%d", path, (int)getpid());
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return fs_error("open", temporary, NULL);
    char *error = NULL;
    for (size_t left = strlen(text); left && !error;) {
        ssize_t n = write(fd, text, left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) error = fs_error("write", NULL, NULL);
        else {
            text += n;
            left -= (size_t)n;
        }
    }
    if (close(fd) != 0 && !error) error = fs_error("close", NULL, NULL);
    if (!error && rename(temporary, path) != 0) error = fs_error("rename", temporary, path);
    if (error) unlink(temporary);
    return error;
}

/*
 * `op=start`, `id` (agent-sandbox.ts startContainer): no `state`, which only startContainer hooks read, and a
 * container with those goes to Node. NULL when out of memory.
 */
static char *start_request(const char *id, size_t *length) {
    char *records = NULL;
    int n = asprintf(&records, "op=start%cid=%s%c", 0, id, 0);
    if (n < 0) return NULL;
    *length = (size_t)n;
    return records;
}

/* describe(error).replace(new RegExp(`^container ${id}: `), ''): the regular expression's `.` is any character. */
static const char *without_container_prefix(const char *message, const char *id) {
    size_t id_length = strlen(id);
    if (strncmp(message, "container ", 10) != 0 || strlen(message) < 10 + id_length + 2) return message;
    for (size_t i = 0; i < id_length; i++) {
        char c = message[10 + i];
        bool matches = id[i] == '.' ? c != '\n' && c != '\r' && (unsigned char)c < 0x80 : c == id[i];
        if (!matches) return message;
    }
    return strncmp(message + 10 + id_length, ": ", 2) == 0 ? message + 10 + id_length + 2 : message;
}

/*
 * Runtime.start's catch: every process of the container gets SIGKILL (whatever the agent answers), the record
 * says `stopped`, and the error names the container once. Gives the exit status.
 */
static int fail_start(struct held *held, const struct cli_options *options, const char *id, const char *state_path,
                      enum call_result result, char *why) {
    if (result == CALL_ERROR) {
        char kill_all[1200], *ignored = NULL;
        int n = snprintf(kill_all, sizeof kill_all, "op=signal%cid=%s%csignal=9%call=1%c", 0, id, 0, 0, 0);
        agent_call(&held->session, 2, kill_all, (size_t)n, &ignored);
        free(ignored);
    }
    agent_close(&held->session);
    char *stopped = container_record_with_status(&held->record, "stopped");
    char *message = stopped ? write_state(state_path, stopped) : strdup("out of memory");
    free(stopped);
    /* A state.json that cannot be written is the error then, as the fs error replaces Node's. */
    if (!message && asprintf(&message, "container %s: %s", id, without_container_prefix(why ? why : "", id)) < 0) message = NULL;
    cli_report_error(options, message ? message : "out of memory");
    free(message);
    free(why);
    container_record_free(&held->record);
    close(held->lock_fd);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: runbox-start ENTRY [ARG...]\n");
        return 2;
    }
    node_entry = argv[1];
    node_argc = argc - 2;
    node_argv = argv + 2;
    struct cli_options options = {0};
    const char *id;
    if (!parse_arguments(node_argc, node_argv, &options, &id) || !plain_id(id)) exec_node(NULL);

    struct held held = {.lock_fd = -1, .session = {.fd = -1, .lease_fd = -1}};
    char dir[4200], path[4300];
    if (snprintf(dir, sizeof dir, "%s/%s", options.root ? options.root : DEFAULT_ROOT, id) >= (int)sizeof dir) exec_node(NULL);

    /* The container lock (src/runtime/container-lock.ts): the lock file, flock, and not unlinked meanwhile. */
    snprintf(path, sizeof path, "%s/lock", dir);
    held.lock_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (held.lock_fd < 0) exec_node(&held);
    int locked;
    do locked = flock(held.lock_fd, LOCK_EX);
    while (locked < 0 && errno == EINTR);
    struct stat lock_stat;
    if (locked < 0 || fstat(held.lock_fd, &lock_stat) != 0 || lock_stat.st_nlink == 0) exec_node(&held);

    snprintf(path, sizeof path, "%s/state.json", dir);
    struct container_record *record = &held.record;
    if (!container_record_read(path, id, record)) exec_node(&held);
    if (strcmp(record->status_value, "created") != 0 || !process_alive(record->pid_value, record->pid_start_time)) exec_node(&held);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!config_has_no_start_hooks(path)) exec_node(&held);

    size_t request_length;
    char *request = start_request(id, &request_length);
    if (!request) exec_node(&held);
    bool connected = record->driver == DRIVER_EMULATED
        ? agent_connect_socket(&held.session, record->socket)
        : process_alive(record->vm_pid, record->vm_start_time) &&
          agent_connect_vm_port(&held.session, record->vm_dir, record->agent_ports);
    if (!connected) {
        free(request);
        exec_node(&held);
    }

    char *why = NULL;
    enum call_result result = agent_call(&held.session, 1, request, request_length, &why);
    free(request);
    snprintf(path, sizeof path, "%s/state.json", dir);
    if (result != CALL_OK) return fail_start(&held, &options, id, path, result, why);
    agent_close(&held.session);
    char *running = container_record_with_status(record, "running");
    char *error = running ? write_state(path, running) : strdup("out of memory");
    free(running);
    int status = error ? 1 : 0;
    if (error) cli_report_error(&options, error);
    free(error);
    container_record_free(record);
    close(held.lock_fd);
    return status;
}
