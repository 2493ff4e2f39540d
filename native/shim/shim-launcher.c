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
#define _GNU_SOURCE
#include "shim-launcher.h"

#include <stdio.h>
#include <string.h>

#include "node-exec.h"
#include "util.h"

/* Go's flag syntax: -name value, --name value, -name=value. False for anything not understood here. */
static bool parse_flags(int argc, char **argv, struct shim_flags *flags)
{
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (arg[0] != '-') {
			if (flags->action || (strcmp(arg, "start") != 0 && strcmp(arg, "delete") != 0))
				return false;
			flags->action = arg;
			continue;
		}
		const char *name_start = arg + (arg[1] == '-' ? 2 : 1);
		char name[32];
		const char *equals = strchr(name_start, '=');
		size_t name_len = equals ? (size_t)(equals - name_start) : strlen(name_start);
		if (name_len >= sizeof name)
			return false;
		memcpy(name, name_start, name_len);
		name[name_len] = 0;
		const char *inline_value = equals ? equals + 1 : NULL;
		if (!strcmp(name, "debug")) {
			if (inline_value && strcmp(inline_value, "true") != 0 && strcmp(inline_value, "false") != 0)
				return false;
			flags->debug = !inline_value || !strcmp(inline_value, "true");
			continue;
		}
		const struct {
			const char *name;
			const char **slot;
		} value_flags[] = {
			{ "namespace", &flags->namespace },
			{ "address", &flags->address },
			{ "publish-binary", &flags->publish_binary },
			{ "id", &flags->id },
			{ "bundle", &flags->bundle },
		};
		const char **slot = NULL;
		for (size_t f = 0; f < ARRAY_LEN(value_flags); f++)
			if (!strcmp(name, value_flags[f].name))
				slot = value_flags[f].slot;
		if (!slot)
			return false;
		if (inline_value)
			*slot = inline_value;
		else if (i + 1 < argc)
			*slot = argv[++i];
		else
			return false;
	}
	return flags->namespace && *flags->namespace && flags->id && *flags->id;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: shim-launcher NODE_ENTRY [ARGS...]\n");
		return 1;
	}
	struct launch launch = { .node_entry = argv[1], .argc = argc - 2, .argv = argv + 2 };
	if (parse_flags(launch.argc, launch.argv, &launch.flags) && launch.flags.action) {
		if (!strcmp(launch.flags.action, "start"))
			fast_start(&launch);
		else
			fast_delete(&launch);
	}
	exec_node(launch.node_entry, launch.argc, launch.argv, "containerd-shim-runbox-v2", 1);
}
