/*
 * runbox-launcher: what bin/runbox execs for `runbox create` instead of Node, so that create finds its sandbox
 * agent already started. Node takes about 100 ms to reach the CLI's code; forking the agent from there costs
 * another ~9 ms (fork of a large process) and its start-up ~5 ms more, all on create's critical path. Forked
 * here, from a small static process, the agent starts while Node does, and waits on a socketpair for its
 * arguments: the emulated driver sends them (NUL-separated, ended by an empty one) or, when it has no use for
 * the agent, exits, and the agent with it.
 *
 *   runbox-launcher ENTRY AGENT [ARG...]   forks AGENT, then runs `node ENTRY ARG...`
 *   runbox-launcher ENTRY - [ARG...]       no agent (state, kill, delete): the pool, else `node ENTRY ARG...`
 *
 * The agent's end is its fd 3 (AGENT_DRIVER_FD); Node's end and the agent's pid are in RUNBOX_PREFORKED_AGENT
 * ("FD PID"). Anything that goes wrong here falls back to running Node without the agent: the driver then spawns
 * it itself.
 *
 * With the agent forked, the call goes to an idle pooled CLI worker when the warm pool has one of this build
 * (docs/warm-pool.md): it is handed argv, environment, cwd, umask, priority, fds 0-2 and Node's end of the agent's
 * socketpair, and this process stays the agent's parent (so the container's init is still the caller's
 * grandchild, as runc's is: native/agent/caller_reaps.h), passes signals on to the worker, and exits with the
 * worker's exit status. The pool is refilled in the background. A call without an agent goes to the pool the same
 * way, with fds 0-2 only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "facts.h"
#include "frame.h"
#include "node-exec.h"
#include "util.h"
#include "warm-pool.h"

static volatile sig_atomic_t forwarded_signal;
static pid_t worker_pid;

static void forward_signal(int sig)
{
	forwarded_signal = sig;
	kill(worker_pid, sig);
}

/* Waits (at most 2 s) for the worker to close its end, as it does when its process ends: the status comes from its
 * exit handler, and a caller that looks at processes once this one has exited must not find the worker still
 * there with the call's command line as its title. */
static void await_worker_end(int connection)
{
	char scrap[64];
	struct pollfd pfd = { .fd = connection, .events = POLLIN };
	while (poll(&pfd, 1, 2000) > 0) {
		ssize_t n = read(connection, scrap, sizeof scrap);
		if (n == 0 || (n < 0 && errno != EINTR))
			return;
	}
}

/* From now on, the signals a caller sends this process go to the worker. */
static void forward_signals(pid_t worker)
{
	worker_pid = worker;
	const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
	struct sigaction action = { .sa_handler = forward_signal, .sa_flags = SA_RESTART };
	sigemptyset(&action.sa_mask);
	for (size_t i = 0; i < ARRAY_LEN(forwarded); i++)
		sigaction(forwarded[i], &action, NULL);
}

/* Waits for the worker's exit status and exits with it; a worker that died without one is died with: by the
 * signal passed on to it, else SIGKILL. */
static _Noreturn void relay(int connection)
{
	char line[64];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(connection, line + len, sizeof line - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		line[len] = 0;
		char *end = strchr(line, '\n');
		uint64_t status;
		size_t prefix = strlen(POOL_EXIT);
		if (end) {
			*end = 0;
			if (!strncmp(line, POOL_EXIT, prefix) && parse_u64(line + prefix, &status) && status <= 255) {
				await_worker_end(connection);
				exit((int)status);
			}
			break;
		}
		if (len == sizeof line - 1)
			break;
	}
	int sig = forwarded_signal ? forwarded_signal : SIGKILL;
	signal(sig, SIG_DFL);
	raise(sig);
	raise(SIGKILL);
	_exit(137);
}

/* Whether fds 0-2 are open (a closed one cannot be handed over) and the call passes no others (runc's
 * --preserve-fds, systemd's LISTEN_FDS): only then can a worker stand in for this process. */
static bool handable(int argc, char **argv)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0)
			return false;
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "--preserve-fds", 14))
			return false;
	return !getenv("LISTEN_FDS");
}

/* Hands the call to a pooled worker (with the preforked agent's end, agent_fd, unless -1) and relays its exit
 * status; returns only when no worker took it. */
static void try_pool(const char *entry, int argc, char **argv, int agent_fd, pid_t agent_pid)
{
	struct pool pool;
	char cwd[4096];
	if (!pool_open(&pool, POOL_KIND_CLI, entry) || pool.size <= 0 || !handable(argc, argv) || !getcwd(cwd, sizeof cwd))
		return;
	struct buf records = { 0 };
	/* argv[argc] is NULL, as main's is. */
	pool_add_process_records(&records, (const char *const *)argv, cwd);
	errno = 0;
	int nice_value = getpriority(PRIO_PROCESS, 0);
	if (errno == 0)
		record_addf(&records, "nice", "%d", nice_value);
	record_addf(&records, "launcher", "%d", (int)getpid());
	if (agent_fd >= 0)
		record_addf(&records, "agent-pid", "%d", (int)agent_pid);
	const int fds[] = { 0, 1, 2, agent_fd };
	pid_t worker;
	int connection = pool_take(&pool, &records, fds, agent_fd >= 0 ? ARRAY_LEN(fds) : 3, &worker);
	buf_free(&records);
	pool_refill(&pool);
	if (connection < 0)
		return;
	/* The worker holds Node's end of the agent's socketpair now. */
	if (agent_fd >= 0)
		close(agent_fd);
	forward_signals(worker);
	relay(connection);
}

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
	bool with_agent = strcmp(argv[2], "-") != 0;
	if (!agent || !*agent)
		agent = argv[2];
	unsetenv(ENV_PREFORKED_AGENT);
	if (!with_agent) {
		try_pool(entry, argc - 3, argv + 3, -1, 0);
	} else if (access(agent, X_OK) == 0) {
		pid_t pid;
		int fd = fork_agent(agent, &pid);
		char value[32];
		if (fd >= 0) {
			try_pool(entry, argc - 3, argv + 3, fd, pid);
			snprintf(value, sizeof value, "%d %d", fd, (int)pid);
			setenv(ENV_PREFORKED_AGENT, value, 1);
		}
	}
	exec_node(entry, argc - 3, argv + 3, "runbox", 127);
}
