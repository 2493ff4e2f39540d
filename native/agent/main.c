/*
 * runbox-agent: the process that runs containers where they run, and stays their parent. It serves the
 * protocol of PROTOCOL.md on a unix socket (the emulated driver), or, as a microVM's init (pid 1), on the
 * VM's virtio-serial ports (vm.h, ports.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "caller_bound.h"
#include "conn.h"
#include "container.h"
#include "creds.h"
#include "enclave.h"
#include "exec.h"
#include "facts.h"
#include "cgroups.h"
#include "freezer.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "ports.h"
#include "proc.h"
#include "registry.h"
#include "server.h"
#include "stdio.h"
#include "util.h"
#include "vm.h"

#define SHUTDOWN_REAP_MS 5000

static int signal_fd = -1;

static void on_signal(void *ctx, short revents)
{
	(void)ctx;
	(void)revents;
	struct signalfd_siginfo si;
	while (read(signal_fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGCHLD)
			continue; /* reaped below, once for all */
		if (si.ssi_signo == SIGIO) {
			ports_poll();
			continue;
		}
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_msg("signal %u: stopping", si.ssi_signo);
			server_stopping = true;
		}
	}
	reaper_reap();
}

static int setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGIO);
	/* signalfd sees only what is not ignored: whoever started us may have ignored some (SIGCHLD ignored would
	 * also reap our children for us, and lose their exit statuses). */
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(&set, sig))
			signal(sig, SIG_DFL);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (signal_fd < 0)
		return -1;
	loop_watch(signal_fd, NULL, on_signal, NULL);
	return 0;
}

static bool all_reaped(void)
{
	for (struct container *c = containers; c; c = c->next)
		if (!ctr_all_reaped(c))
			return false;
	return true;
}

/* Kills every container, reaps them (waiting a while at most), answers `shutdown` and lets go of all. */
static void stop_everything(void)
{
	for (struct container *c = containers; c; c = c->next) {
		if (c->freezer)
			freezer_set(c->freezer, false);
		if (c->stage1_pid)
			kill(c->stage1_pid, SIGKILL);
		proc_kill_container(c, SIGKILL);
	}
	uint64_t deadline = now_mono_ms() + SHUTDOWN_REAP_MS;
	for (;;) {
		reaper_reap();
		reaper_replay();
		if (all_reaped() || now_mono_ms() >= deadline)
			break;
		loop_run_once(10);
	}
	while (containers)
		ctr_forget(containers);
	while (cgroups_retry_removals() && now_mono_ms() < deadline) {
		loop_run_once(10);
		reaper_reap();
	}
	reply_ok(server_shutdown_reply, NULL);
	ports_close();
	conn_flush_all(1000);
	conn_close_all();
	listener_close();
}

static bool logging; /* fd 2 is the log now, no longer the caller's stderr */

/* Says why the agent cannot start: on fd 3 if the driver gave one (it reads it), else on the caller's stderr. */
static _Noreturn void startup_failed(int ready_fd, const char *msg)
{
	if (logging)
		log_msg("%s", msg);
	if (vm_mode) {
		dprintf(vm_log_fd(), "runbox-agent: %s\n", msg);
		vm_power_off();
	}
	if (ready_fd >= 0)
		dprintf(ready_fd, "%s\n", msg);
	else if (stdio_saved_stderr() >= 0)
		dprintf(stdio_saved_stderr(), "runbox-agent: %s\n", msg);
	exit(1);
}

/* As a microVM's init: fds 0-2 become the caller's stdio (ports), the agent's own output the console. */
static void setup_vm(void)
{
	if (vm_init() < 0)
		vm_power_off();
	enclave_detect();
	stdio_save_inherited();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC), log = vm_log_fd();
	dup2(null, 0);
	dup2(log >= 0 ? log : null, 1);
	dup2(log >= 0 ? log : null, 2);
	logging = true;
}

#define USAGE                                                                                           \
	"usage: runbox-agent " AGENT_FLAG_SOCKET " PATH [" AGENT_FLAG_LOG " PATH] [" AGENT_FLAG_STDIO_NULL "] [" \
	AGENT_FLAG_CALLER_REAPS "], or " AGENT_FLAG_PREFORKED
#define MAX_PREFORKED_ARGS 16

/*
 * Forked by bin/runbox's launcher before the CLI knew what it would need (cli/runbox-launcher.c): the arguments
 * come over AGENT_DRIVER_FD once the driver sends them, NUL-separated and ended by an empty one. We die with the CLI
 * (PR_SET_PDEATHSIG, set by the launcher) until it has recorded the sandbox (caller_bound.h); EOF first means it
 * had no use for us: leave without a word.
 */
static int read_preforked_args(int fd, char **args)
{
	static char buffer[8192];
	size_t used = 0;
	while (used == 0 || buffer[used - 1] != '\0' || (used > 1 && buffer[used - 2] != '\0')) {
		if (used == sizeof buffer)
			startup_failed(fd, "the preforked arguments are too long");
		ssize_t n = read(fd, buffer + used, sizeof buffer - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(0);
		used += (size_t)n;
	}
	int count = 0;
	for (char *arg = buffer; *arg; arg += strlen(arg) + 1) {
		if (count == MAX_PREFORKED_ARGS)
			startup_failed(fd, "too many preforked arguments");
		args[count++] = arg;
	}
	return count;
}

/*
 * The socket's directory (the sandbox's) becomes our working directory: the socket is bound by its name alone,
 * so the length of the directory's path does not matter (a sockaddr_un holds 107 bytes), and the agent of a
 * sandbox is the runbox-agent whose cwd is the sandbox's directory, whatever became of its records. Gives the
 * name to bind.
 */
static const char *enter_socket_directory(const char *socket_path, int ready_fd)
{
	const char *slash = strrchr(socket_path, '/');
	if (!slash)
		return socket_path;
	char *dir = xstrdup(socket_path);
	dir[slash == socket_path ? 1 : slash - socket_path] = 0;
	if (chdir(dir) < 0) {
		char msg[4200];
		snprintf(msg, sizeof msg, "cannot enter the socket's directory %s: %s", dir, errtext(errno));
		startup_failed(ready_fd, msg);
	}
	free(dir);
	return slash + 1;
}

/* As a host process: returns the socket to listen on. */
static const char *setup_host(int argc, char **argv, int *ready_fd)
{
	/* Before anything opens an fd: the inherited stdio for stdio=inherit, and the ready pipe. */
	*ready_fd = fcntl(AGENT_DRIVER_FD, F_GETFD) >= 0 ? fcntl(AGENT_DRIVER_FD, F_DUPFD_CLOEXEC, 10) : -1;
	if (*ready_fd >= 0)
		close(AGENT_DRIVER_FD);

	char *preforked[MAX_PREFORKED_ARGS + 1];
	if (argc == 2 && !strcmp(argv[1], AGENT_FLAG_PREFORKED)) {
		if (*ready_fd < 0)
			startup_failed(-1, AGENT_FLAG_PREFORKED " needs the socketpair on fd 3");
		argc = 1 + read_preforked_args(*ready_fd, preforked + 1);
		preforked[0] = argv[0];
		argv = preforked;
	}

	const char *socket_path = NULL, *log_path = NULL;
	bool stdio_null = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], AGENT_FLAG_SOCKET) && i + 1 < argc) {
			socket_path = argv[++i];
		} else if (!strcmp(argv[i], AGENT_FLAG_LOG) && i + 1 < argc) {
			log_path = argv[++i];
		} else if (!strcmp(argv[i], AGENT_FLAG_STDIO_NULL)) {
			stdio_null = true;
		} else if (!strcmp(argv[i], AGENT_FLAG_CALLER_REAPS)) {
			setenv("RUNBOX_CALLER_REAPS", "1", 1); /* caller_reaps.c */
		} else if (!strcmp(argv[i], "--help")) {
			puts(USAGE " (or as a microVM's init, pid 1)");
			exit(0);
		} else {
			startup_failed(*ready_fd, "invalid arguments (" USAGE ")");
		}
	}
	/* The containers' stdio when it is to be inherited: the caller's, unless it asked for none. */
	if (stdio_null) {
		int null = open("/dev/null", O_RDWR);
		for (int i = 0; null >= 0 && i < 3; i++)
			dup2(null, i);
		if (null > 2)
			close(null);
	}
	stdio_save_inherited();
	if (!socket_path)
		startup_failed(*ready_fd, AGENT_FLAG_SOCKET " PATH is required (" USAGE ")");
	if (*ready_fd >= 0 && caller_bound_init(*ready_fd) < 0)
		exit(0); /* the caller died before it could record us */
	socket_path = enter_socket_directory(socket_path, *ready_fd);

	/* Our own 0-2: /dev/null in, the log out (or /dev/null). */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int log = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : null;
	if (null < 0 || log < 0)
		startup_failed(*ready_fd, log_path ? "cannot open the log file" : "cannot open /dev/null");
	dup2(null, 0);
	dup2(log, 1);
	dup2(log, 2);
	if (log != null && log > 2)
		close(log);
	if (null > 2)
		close(null);
	logging = true;
	return socket_path;
}

int main(int argc, char **argv)
{
	int ready_fd = -1;
	const char *socket_path = NULL;
	if (getpid() == 1)
		setup_vm();
	else
		socket_path = setup_host(argc, argv, &ready_fd);

	/* Big buffers (a 4 MiB frame, a burst of output) go back to the system when freed, not to the heap. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	setsid();
	/* Orphans of container processes come to us, not to the host's init: we reap them. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	creds_read_cap_last_cap();
	server_init();
	char err[512];
	if (setup_signals() < 0)
		startup_failed(ready_fd, "signalfd failed");
	if (exec_init() < 0)
		startup_failed(ready_fd, "cannot open /proc/self/ns/pid");
	if (vm_mode) {
		if (ports_open() == 0)
			startup_failed(ready_fd, "no virtio-serial port named agent.0");
		log_msg("serving the agent.N ports");
	} else {
		if (listener_open(socket_path, err, sizeof err) < 0)
			startup_failed(ready_fd, err);
		log_msg("listening on %s", socket_path);
	}
	if (ready_fd >= 0) {
		/* The driver that started us (a socketpair on fd 3) goes on over it as its first connection: "ready", then
		 * frames, as on the socket, and no connect for the caller to wait for. */
		(void)!write(ready_fd, AGENT_READY, sizeof AGENT_READY - 1);
		conn_open(ready_fd, ready_fd, "caller");
	}

	while (!server_stopping && !vm_done()) {
		loop_run_once(cgroups_retry_removals() ? 20 : vm_poll_timeout());
		reaper_replay();
	}
	stop_everything();
	if (vm_mode)
		vm_power_off();
	log_msg("exiting");
	return 0;
}
