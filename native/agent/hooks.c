#define _GNU_SOURCE
#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "util.h"

/* How much of a failing hook's output goes into the error message. */
#define OUTPUT_KEPT 512

static const char *phase_name(enum hook_phase phase)
{
	return phase == HOOK_CREATE_CONTAINER ? "createContainer" : "startContainer";
}

static _Noreturn void hook_child(const struct hook_spec *h, int in, int out)
{
	reset_signals();
	dup2(in, 0);
	dup2(out, 1);
	dup2(out, 2);
	close_range(3, ~0u, 0);
	execve(h->path, h->argv, h->envp);
	dprintf(2, "fork/exec %s: %s", h->path, errtext(errno));
	_exit(127);
}

static void run_hook(const struct hook_spec *h, const char *state, size_t state_len)
{
	const char *what = phase_name(h->phase);
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		child_fail(errno, "%s hook %s: pipe", what, h->path);
	pid_t pid = fork();
	if (pid < 0)
		child_fail(errno, "%s hook %s: fork", what, h->path);
	if (pid == 0)
		hook_child(h, in[0], out[1]);
	close(in[0]);
	close(out[1]);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	set_nonblock(in[1]);
	set_nonblock(out[0]);

	char output[OUTPUT_KEPT + 1];
	size_t kept = 0, written = 0;
	uint64_t deadline = h->timeout ? now_mono_ms() + (uint64_t)h->timeout * 1000 : 0;
	bool exited = false, timed_out = false;
	int status = 0;
	if (!state_len)
		close(in[1]), in[1] = -1;
	/* Feed stdin and collect output until the hook exits (or its time is up). */
	while (!exited) {
		struct pollfd pfds[3] = {
			{ .fd = pidfd, .events = POLLIN },
			{ .fd = out[0], .events = POLLIN },
			{ .fd = in[1], .events = POLLOUT },
		};
		int timeout = -1;
		if (deadline) {
			uint64_t now = now_mono_ms();
			if (now >= deadline) {
				timed_out = true;
				kill(pid, SIGKILL);
				waitpid(pid, &status, 0);
				break;
			}
			timeout = (int)(deadline - now);
		}
		if (pidfd < 0)
			pfds[0].fd = -1;
		if (poll(pfds, 3, timeout) < 0 && errno != EINTR)
			break;
		if (pfds[1].revents) {
			char buf[4096];
			ssize_t n = read(out[0], buf, sizeof buf);
			if (n > 0 && kept < OUTPUT_KEPT) {
				size_t take = (size_t)n < OUTPUT_KEPT - kept ? (size_t)n : OUTPUT_KEPT - kept;
				memcpy(output + kept, buf, take);
				kept += take;
			} else if (n == 0) {
				close(out[0]);
				out[0] = -1;
			}
		}
		if (pfds[2].revents) {
			ssize_t n = write(in[1], state + written, state_len - written);
			if (n > 0)
				written += (size_t)n;
			if ((n < 0 && errno != EAGAIN) || written == state_len)
				close(in[1]), in[1] = -1; /* all of it, or the hook will not read it */
		}
		/* Without a pidfd, the end of its output stands for the hook's end. */
		if (pfds[0].revents || (pidfd < 0 && out[0] < 0))
			exited = waitpid(pid, &status, pidfd < 0 ? 0 : WNOHANG) == pid;
	}
	if (in[1] >= 0)
		close(in[1]);
	if (out[0] >= 0)
		close(out[0]);
	if (pidfd >= 0)
		close(pidfd);

	output[kept] = 0;
	while (kept && (output[kept - 1] == '\n' || output[kept - 1] == ' '))
		output[--kept] = 0;
	const char *sep = kept ? ": " : "";
	if (timed_out)
		child_fail_plain(ETIMEDOUT, "%s hook %s: timeout after %u seconds%s%s", what, h->path, h->timeout, sep, output);
	if (WIFSIGNALED(status)) {
		char sig[64];
		snprintf(sig, sizeof sig, "%s", strsignal(WTERMSIG(status)));
		sig[0] = (char)(sig[0] >= 'A' && sig[0] <= 'Z' ? sig[0] - 'A' + 'a' : sig[0]); /* as Go says it */
		child_fail_plain(0, "%s hook %s: signal: %s%s%s", what, h->path, sig, sep, output);
	}
	if (WEXITSTATUS(status))
		child_fail_plain(0, "%s hook %s: exit status %d%s%s", what, h->path, WEXITSTATUS(status), sep, output);
}

void hooks_run(const struct ctrspec *s, enum hook_phase phase, const char *state, size_t state_len)
{
	if (!s->nhooks)
		return;
	/* A hook that exits without reading its stdin must not kill us with SIGPIPE. */
	struct sigaction ignore = { .sa_handler = SIG_IGN }, old;
	sigaction(SIGPIPE, &ignore, &old);
	for (size_t i = 0; i < s->nhooks; i++)
		if (s->hooks[i].phase == phase)
			run_hook(&s->hooks[i], state, state_len);
	sigaction(SIGPIPE, &old, NULL);
}
