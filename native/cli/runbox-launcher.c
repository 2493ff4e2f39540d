/*
 * runbox-launcher: what bin/runbox execs for `runbox create` instead of Node, so that create finds its sandbox
 * agent already started. Node takes about 100 ms to reach the CLI's code; forking the agent from there costs
 * another ~9 ms (fork of a large process) and its start-up ~5 ms more, all on create's critical path. Forked
 * here, from a small static process, the agent starts while Node does, and waits on a socketpair for its
 * arguments: the emulated driver sends them (NUL-separated, ended by an empty one) or, when it has no use for
 * the agent, exits, and the agent with it.
 *
 *   runbox-launcher ENTRY AGENT [ARG...]   forks AGENT, then runs `node ENTRY ARG...`
 *
 * The agent's end is its fd 3 (AGENT_DRIVER_FD); Node's end and the agent's pid are in RUNBOX_PREFORKED_AGENT
 * ("FD PID"). Anything that goes wrong here falls back to running Node without the agent: the driver then spawns
 * it itself.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "facts.h"
#include "node-exec.h"
#include "util.h"

/* Forks AGENT on one end of a socketpair (its AGENT_DRIVER_FD); returns the other end, or -1 (nothing left behind then). */
static int fork_agent(const char *agent, pid_t *pid)
{
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
		return -1;
	pid_t parent = getpid();
	*pid = fork();
	if (*pid < 0) {
		close(pair[0]);
		close(pair[1]);
		return -1;
	}
	if (*pid == 0) {
		/* Until the driver takes it, the agent dies with the CLI: a create that fails, or that another driver
		 * serves, leaves nothing behind, even under kill -9. The agent lifts this once it has its arguments. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(127);
		/* As libuv's spawn would leave it: no signal blocked or ignored (a shell's background job ignores
		 * SIGINT and SIGQUIT, and an ignored signal stays ignored across exec). */
		reset_signals();
		/* dup2 leaves AGENT_DRIVER_FD without close-on-exec; every other fd of ours has it. */
		if (dup2(pair[1], AGENT_DRIVER_FD) < 0)
			_exit(127);
		execl(agent, agent, AGENT_FLAG_PREFORKED, (char *)NULL);
		_exit(127);
	}
	close(pair[1]);
	/* Node's end must survive exec. */
	if (fcntl(pair[0], F_SETFD, 0) < 0) {
		close(pair[0]);
		return -1;
	}
	return pair[0];
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: runbox-launcher ENTRY AGENT [ARG...]\n");
		return 2;
	}
	const char *entry = argv[1], *agent = getenv(ENV_AGENT_BINARY);
	if (!agent || !*agent)
		agent = argv[2];
	unsetenv(ENV_PREFORKED_AGENT);
	if (access(agent, X_OK) == 0) {
		pid_t pid;
		int fd = fork_agent(agent, &pid);
		char value[32];
		if (fd >= 0) {
			snprintf(value, sizeof value, "%d %d", fd, (int)pid);
			setenv(ENV_PREFORKED_AGENT, value, 1);
		}
	}
	exec_node(entry, argc - 3, argv + 3, "runbox", 127);
}
