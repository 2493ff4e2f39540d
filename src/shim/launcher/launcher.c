/*
 * The entry containerd runs for io.containerd.runbox.v2. containerd runs a shim binary three times per
 * container: `start` (find or start the shim of the container's group, print its address), the long-running
 * shim itself, and `delete` once the shim has gone. Each Node start costs about 100 ms, so the two short runs are
 * done here when they need nothing from the TypeScript side: `start` over ttrpc, and `delete` when the shim left
 * nothing to clean up. Anything else (the shim itself, gRPC, clean-up after a killed shim, arguments this file
 * does not know) runs in Node with the arguments unchanged, where the full implementation lives.
 *
 * Usage: shim-launcher NODE_ENTRY [containerd's arguments...]
 */
#include "launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

_Noreturn void exec_node_shim(const struct launch *launch) {
    char **argv = calloc((size_t)launch->argc + 3, sizeof *argv);
    if (!argv) _exit(1);
    argv[0] = "node";
    argv[1] = (char *)launch->node_entry;
    for (int i = 0; i < launch->argc; i++) argv[i + 2] = launch->argv[i];
    execvp("node", argv);
    fprintf(stderr, "containerd-shim-runbox-v2: cannot run node: %s\n", strerror(errno));
    exit(1);
}

/* Go's flag syntax: -name value, --name value, -name=value. False for anything not understood here. */
static bool parse_flags(int argc, char **argv, struct shim_flags *flags) {
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-') {
            if (flags->action || (strcmp(arg, "start") != 0 && strcmp(arg, "delete") != 0)) return false;
            flags->action = arg;
            continue;
        }
        const char *name_start = arg + (arg[1] == '-' ? 2 : 1);
        char name[32];
        const char *equals = strchr(name_start, '=');
        size_t name_length = equals ? (size_t)(equals - name_start) : strlen(name_start);
        if (name_length >= sizeof name) return false;
        memcpy(name, name_start, name_length);
        name[name_length] = '\0';
        const char *inline_value = equals ? equals + 1 : NULL;
        if (strcmp(name, "debug") == 0) {
            if (inline_value && strcmp(inline_value, "true") != 0 && strcmp(inline_value, "false") != 0) return false;
            flags->debug = !inline_value || strcmp(inline_value, "true") == 0;
            continue;
        }
        const struct { const char *name; const char **slot; } value_flags[] = {
            {"namespace", &flags->namespace}, {"address", &flags->address}, {"publish-binary", &flags->publish_binary},
            {"id", &flags->id}, {"bundle", &flags->bundle},
        };
        const char **slot = NULL;
        for (size_t f = 0; f < sizeof value_flags / sizeof value_flags[0]; f++)
            if (strcmp(name, value_flags[f].name) == 0) slot = value_flags[f].slot;
        if (!slot) return false;
        if (inline_value) *slot = inline_value;
        else if (i + 1 < argc) *slot = argv[++i];
        else return false;
    }
    return flags->namespace && *flags->namespace && flags->id && *flags->id;
}

bool unix_socket_served(const char *path) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof address.sun_path) return false;
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool served = fd >= 0 && connect(fd, (struct sockaddr *)&address, sizeof address) == 0;
    if (fd >= 0) close(fd);
    return served;
}

bool join_path(char *buf, size_t capacity, const char *directory, const char *name) {
    int n = snprintf(buf, capacity, "%s/%s", directory, name);
    return n > 0 && (size_t)n < capacity;
}

bool write_file_atomic(const char *path, const char *text, unsigned mode) {
    char temporary[4096];
    int n = snprintf(temporary, sizeof temporary, "%s.%d.tmp", path, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof temporary) {
        errno = ENAMETOOLONG;
        return false;
    }
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return false;
    size_t length = strlen(text), done = 0;
    while (done < length) {
        ssize_t written = write(fd, text + done, length - done);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) break;
        done += (size_t)written;
    }
    bool ok = done == length && fchmod(fd, mode) == 0;
    ok = close(fd) == 0 && ok;
    if (ok && rename(temporary, path) == 0) return true;
    int saved = errno;
    unlink(temporary);
    errno = saved;
    return false;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: shim-launcher NODE_ENTRY [ARGS...]\n");
        return 1;
    }
    struct launch launch = {.node_entry = argv[1], .argc = argc - 2, .argv = argv + 2};
    if (parse_flags(launch.argc, launch.argv, &launch.flags) && launch.flags.action) {
        if (strcmp(launch.flags.action, "start") == 0) fast_start(&launch);
        else fast_delete(&launch);
    }
    exec_node_shim(&launch);
}
