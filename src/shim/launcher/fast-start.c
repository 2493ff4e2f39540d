/*
 * `start` over ttrpc, as src/shim/shim-start.ts does it: the socket of the container's group at
 * /run/containerd/s/<sha256(address/namespace/group)>; if a shim already serves it, that shim serves this
 * container too; otherwise the socket is bound (mode 0600, renamed into place from a private directory) and
 * the long-running shim is started in Node, detached, with it as fd 3. Prints the address and nothing else.
 * Whatever goes wrong here is left to the TypeScript `start`, which tries again and reports it in its words.
 */
#include "config-group.h"
#include "launcher.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/close_range.h>

#define SOCKET_DIRECTORY "/run/containerd/s"
#define SHIM_STATE_ROOT "/run/runbox-shim"
#define CONFIG_LIMIT (16 << 20)
#define GROUP_MAX 256
/* Where the long-running shim's fds end up: its listening socket is fd 3 (shim-serve.ts). */
#define INHERITED_FD 3

static void discard_runtime_options(void) {
    char buffer[4096];
    for (;;) {
        ssize_t n = read(0, buffer, sizeof buffer);
        if (n > 0 || (n < 0 && errno == EINTR)) continue;
        return;
    }
}

/* The group's id, or NULL when config.json is something the TypeScript side must judge. */
static const char *container_group(const char *bundle, const char *id, char *group) {
    char path[4096];
    if (!join_path(path, sizeof path, bundle, "config.json")) return NULL;
    size_t length;
    char *json = read_small_file(path, CONFIG_LIMIT, &length);
    /* Like shim-start.ts: a config.json that cannot be read fails Create later; here the container is its own group. */
    if (!json) return id;
    enum group_result result = config_group(json, length, group, GROUP_MAX);
    free(json);
    if (result == GROUP_UNSURE) return NULL;
    return result == GROUP_FOUND ? group : id;
}

static bool make_directories(const char *path, mode_t mode) {
    char partial[4096];
    size_t length = strlen(path);
    if (length >= sizeof partial) return false;
    for (size_t i = 1; i <= length; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        memcpy(partial, path, i);
        partial[i] = '\0';
        if (mkdir(partial, mode) != 0 && errno != EEXIST) return false;
    }
    return true;
}

/* A listening socket at path, mode 0600 from the moment anyone else can reach it; -1 on failure. */
static int bind_socket(const char *path) {
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) return -1;
    if (!make_directories(SOCKET_DIRECTORY, 0700)) return -1;
    char private_directory[] = SOCKET_DIRECTORY "/.rpc-XXXXXX";
    if (!mkdtemp(private_directory)) return -1;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof address.sun_path, "%s/s", private_directory);
    /* Close-on-exec: only the copy made fd 3 in the shim may outlive the exec, or a closed server would still listen. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&address, sizeof address) == 0 && listen(fd, 511) == 0 &&
              chmod(address.sun_path, 0600) == 0 && rename(address.sun_path, path) == 0;
    if (!ok) {
        if (fd >= 0) close(fd);
        unlink(address.sun_path);
        fd = -1;
    }
    rmdir(private_directory);
    return fd;
}

/* Moves fd to a number of at least 10, out of the way of the 0-3 the child sets up. */
static int lift(int fd) {
    return fd < 0 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 10);
}

/* Starts `node ENTRY -namespace … -bundle DIR` detached with the socket as fd 3; its pid, or -1. */
static pid_t spawn_shim(const struct launch *launch, const char *bundle, int listener) {
    const struct shim_flags *flags = &launch->flags;
    char log_path[4096];
    int log = join_path(log_path, sizeof log_path, bundle, "log")
        ? open(log_path, O_RDWR | O_NONBLOCK | O_APPEND | O_CLOEXEC) : -1;
    if (log < 0) log = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int report[2];
    if (log < 0 || null < 0 || pipe2(report, O_CLOEXEC) != 0) return -1;

    const char *argv[16] = {"node", launch->node_entry, "-namespace", flags->namespace, "-id", flags->id,
                            "-address", flags->address ? flags->address : "", "-publish-binary",
                            flags->publish_binary ? flags->publish_binary : "", "-bundle", bundle};
    if (flags->debug) argv[12] = "-debug";

    pid_t pid = fork();
    if (pid == 0) {
        int fds[3] = {lift(listener), lift(log), lift(null)};
        if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || setsid() < 0 || chdir(bundle) != 0 ||
            dup2(fds[2], 0) < 0 || dup2(fds[2], 1) < 0 || dup2(fds[1], 2) < 0 || dup2(fds[0], INHERITED_FD) < 0)
            goto failed;
        /* Nothing else the launcher was given outlives the exec into the shim (the report pipe: until then). */
        close_range(INHERITED_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC);
        execvp("node", (char *const *)argv);
    failed:;
        int error = errno;
        if (write(report[1], &error, sizeof error) < 0) _exit(127);
        _exit(127);
    }
    close(report[1]);
    int error = 0;
    ssize_t n;
    do n = read(report[0], &error, sizeof error);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    close(log);
    close(null);
    if (pid < 0) return -1;
    if (n > 0) {
        /* exec failed: the child is gone, reap it. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        errno = error;
        return -1;
    }
    return pid;
}

/* BUNDLE/address and BUNDLE/shim.pid, as containerd's own shims write them. */
static bool write_shim_files(const char *bundle, const char *address, pid_t pid) {
    char path[4096];
    if (!join_path(path, sizeof path, bundle, "address") || !write_file_atomic(path, address, 0644)) return false;
    if (pid <= 0) return true;
    char text[32];
    snprintf(text, sizeof text, "%d", (int)pid);
    return join_path(path, sizeof path, bundle, "shim.pid") && write_file_atomic(path, text, 0644);
}

/* The serving shim's state directory (shimStateDir in shim-socket.ts). */
static void state_directory(char *buf, size_t capacity, const char *socket_path) {
    snprintf(buf, capacity, "%s/%s", SHIM_STATE_ROOT, socket_path + strlen(socket_path) - 16);
}

/* Records the new shim's pid in its state directory at once, for the next container of the group (see
 * writeServingShimPid in bundle-record.ts). */
static bool write_serving_shim_pid(const char *socket_path, pid_t pid) {
    char directory[256], path[512], text[32];
    state_directory(directory, sizeof directory, socket_path);
    snprintf(path, sizeof path, "%s/shim.pid", directory);
    snprintf(text, sizeof text, "%d", (int)pid);
    return make_directories(directory, 0700) && write_file_atomic(path, text, 0600);
}

/* The pid the serving shim's `start` or the shim itself wrote in its state directory, or 0. */
static pid_t serving_shim_pid(const char *socket_path) {
    char directory[256], path[512];
    state_directory(directory, sizeof directory, socket_path);
    snprintf(path, sizeof path, "%s/shim.pid", directory);
    char *text = read_small_file(path, 32, NULL);
    pid_t pid = text ? (pid_t)atoi(text) : 0;
    free(text);
    return pid > 0 ? pid : 0;
}

void fast_start(const struct launch *launch) {
    const struct shim_flags *flags = &launch->flags;
    const char *protocol = getenv("RUNBOX_SHIM_PROTOCOL");
    if (protocol && strcmp(protocol, "ttrpc") != 0) return;
    discard_runtime_options();

    char cwd[4096];
    const char *bundle = flags->bundle;
    if (!bundle && !(bundle = getcwd(cwd, sizeof cwd))) return;
    char group_buffer[GROUP_MAX];
    const char *group = container_group(bundle, flags->id, group_buffer);
    if (!group) return;

    char key[8192];
    int key_length = snprintf(key, sizeof key, "%s/%s/%s", flags->address ? flags->address : "", flags->namespace, group);
    if (key_length < 0 || (size_t)key_length >= sizeof key) return;
    char digest[65];
    sha256_hex(key, (size_t)key_length, digest);
    char socket_path[128], address[160];
    snprintf(socket_path, sizeof socket_path, SOCKET_DIRECTORY "/%s", digest);
    snprintf(address, sizeof address, "unix://%s", socket_path);

    if (unix_socket_served(socket_path)) {
        /* Another container of the same group: its shim serves this one too. */
        if (!write_shim_files(bundle, address, serving_shim_pid(socket_path))) return;
    } else {
        int listener = bind_socket(socket_path);
        if (listener < 0) return;
        pid_t pid = spawn_shim(launch, bundle, listener);
        close(listener);
        if (pid < 0 || !write_serving_shim_pid(socket_path, pid) || !write_shim_files(bundle, address, pid)) {
            if (pid > 0) kill(pid, SIGKILL);
            unlink(socket_path);
            return;
        }
    }
    fputs(address, stdout);
    exit(fflush(stdout) == 0 ? 0 : 1);
}
