/* What the shim's launcher was started with, and its two fast paths (shim-launcher.c). */
#pragma once
#include <stdbool.h>

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

/* The Node entry of the shim and the arguments containerd gave. */
struct launch {
	const char *node_entry;
	int argc;
	char **argv;
	struct shim_flags flags;
};

/* Each returns only when it leaves the work to the shim's TypeScript; otherwise it exits. */
void fast_start(const struct launch *launch);
void fast_delete(const struct launch *launch);
