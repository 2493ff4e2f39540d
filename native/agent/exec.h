/*
 * `exec`: a new process in a running container. The agent opens the init's namespaces, forks with its
 * pid_for_children set to the container's pid namespace (then restores it); the child joins the others
 * (mount namespace last but for the user namespace: after it, its root is the container's root) and execs.
 */
#pragma once
#include "registry.h"
#include "request.h"

/* At start-up: the agent's own pid namespace, to go back to after each exec. */
int exec_init(void);
void op_exec(struct request *r);
