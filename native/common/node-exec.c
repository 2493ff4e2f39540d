#define _GNU_SOURCE
#include "node-exec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Noreturn void exec_node(const char *entry, int argc, char **argv, const char *name, int status)
{
	char **node_argv = calloc((size_t)argc + 3, sizeof *node_argv);
	if (node_argv) {
		node_argv[0] = "node";
		node_argv[1] = (char *)entry;
		memcpy(node_argv + 2, argv, (size_t)argc * sizeof *argv);
		execvp("node", node_argv);
	}
	dprintf(2, "%s: cannot run node: %s\n", name, strerror(errno));
	exit(status);
}
