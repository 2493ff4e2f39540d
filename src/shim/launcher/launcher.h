#ifndef RUNBOX_SHIM_LAUNCHER_H
#define RUNBOX_SHIM_LAUNCHER_H
#include <stdbool.h>
#include <stddef.h>

#include "small-file.h"

/* containerd's flags for a v2 shim (see src/shim/shim-flags.ts, which this mirrors). */
struct shim_flags {
    const char *namespace;
    const char *address;
    const char *publish_binary;
    const char *id;
    const char *bundle;
    bool debug;
    const char *action; /* "start", "delete", or NULL for the long-running shim */
};

/* What the launcher was started with: the Node entry of the shim and the arguments containerd gave. */
struct launch {
    const char *node_entry;
    int argc;
    char **argv;
    struct shim_flags flags;
};

/* Runs the shim's TypeScript with containerd's arguments unchanged: everything the launcher does not do itself. */
_Noreturn void exec_node_shim(const struct launch *launch);

/* Each returns only when it leaves the work to exec_node_shim; otherwise it exits. */
void fast_start(const struct launch *launch);
void fast_delete(const struct launch *launch);

/* Writes text to path through a temporary file renamed into place; false on failure (errno set). */
bool write_file_atomic(const char *path, const char *text, unsigned mode);
/* Whether something accepts connections on the unix socket at path. */
bool unix_socket_served(const char *path);
/* snprintf into buf, false when the result would not fit. */
bool join_path(char *buf, size_t capacity, const char *directory, const char *name);

#endif
