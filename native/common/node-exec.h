/* The launchers' way on to Node: what they do not do themselves, the TypeScript does with the same arguments. */
#pragma once

/*
 * Runs `node ENTRY ARG...` (argc args) in this process. Should node not run, says so on stderr in name's words
 * and exits with status.
 */
_Noreturn void exec_node(const char *entry, int argc, char **argv, const char *name, int status);
