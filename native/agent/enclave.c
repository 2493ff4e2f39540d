/* The agent in an enclave's guest (enclave.h). */
#define _GNU_SOURCE
#include "enclave.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "facts.h"
#include "guest.h"
#include "log.h"
#include "stdio.h"
#include "util.h"
#include "vm.h"

/* How long the attester may take: its TPM work and the key broker's answers (~1 s under TCG). */
#define ATTESTER_TIMEOUT_MS 60000
#define MAX_ATTESTER_ARGS (8 + 2 * 64)

bool enclave_mode;
static bool measured;
static bool allow_exec, allow_output, allow_input, have_secrets;

void enclave_detect(void)
{
	enclave_mode = access(ENCLAVE_ATTESTER, X_OK) == 0;
}

/* The records that name one invocation, not what the guest is asked to run: left out of the initdata. (The
 * cgroup path names the container's cgroup, which in the guest holds this container alone.) */
static bool unmeasured(const char *key)
{
	static const char *const keys[] = INITDATA_UNMEASURED_RECORDS;
	for (size_t i = 0; i < INITDATA_UNMEASURED_RECORDS_COUNT; i++)
		if (!strcmp(key, keys[i]))
			return true;
	return false;
}

/* Runs the attester with the initdata on its stdin; 0, or -1 with its own words (or why it could not run) in err. */
static int run_attester(char **argv, const struct buf *initdata, char *err, size_t errlen)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		goto failed;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]), close(in[1]);
		goto failed;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		goto failed;
	}
	if (pid == 0) {
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		dup2(in[0], 0);
		dup2(vm_log_fd() >= 0 ? vm_log_fd() : out[1], 1);
		dup2(out[1], 2);
		execv(argv[0], argv);
		dprintf(2, "exec %s: %s", argv[0], errtext(errno));
		_exit(127);
	}
	close(in[0]), close(out[1]);
	/* The attester reads all of its stdin before anything else. */
	int wrote = write_all(in[1], initdata->data, initdata->len);
	close(in[1]);
	size_t used = 0;
	err[0] = 0;
	uint64_t deadline = now_mono_ms() + ATTESTER_TIMEOUT_MS;
	bool timed_out = false;
	for (;;) {
		struct pollfd p = { out[0], POLLIN, 0 };
		int64_t left = (int64_t)(deadline - now_mono_ms());
		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		ssize_t n = read(out[0], err + used, errlen - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used == errlen - 1)
			used = 0; /* keeps the last of a long story */
	}
	err[used] = 0;
	close(out[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	err[strcspn(err, "\n")] = 0;
	if (timed_out)
		snprintf(err, errlen, "the attester did not finish within %d s", ATTESTER_TIMEOUT_MS / 1000);
	else if (wrote < 0 && !err[0])
		snprintf(err, errlen, "could not hand the attester the initdata");
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (!err[0])
			snprintf(err, errlen, "the attester failed (status 0x%x)", status);
	} else
		return 0;
	return -1;
failed:
	snprintf(err, errlen, "run the attester: %s", errtext(errno));
	return -1;
}

/* The secrets' tmpfs: guest memory only, the agent's alone. */
static int mount_secrets_dir(void)
{
	if (mkdir(ENCLAVE_SECRETS_DIR, 0700) < 0 && errno != EEXIST)
		return -1;
	return mount("tmpfs", ENCLAVE_SECRETS_DIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0711,size=16m");
}

int enclave_begin_create(struct request *r, const char *id)
{
	if (measured) {
		reply_error(r->to, EBUSY, "container %s: an enclave VM runs one container, and it has had its create request", id);
		return -1;
	}
	measured = true;
	struct buf initdata = { 0 };
	char *argv[MAX_ATTESTER_ARGS + 1];
	int argc = 0;
	argv[argc++] = ENCLAVE_ATTESTER;
	char owner[32], port[64];
	const char *uid = records_get(&r->rec, "uid"), *gid = records_get(&r->rec, "gid");
	snprintf(owner, sizeof owner, "%s:%s", uid ? uid : "0", gid ? gid : "0");
	for (size_t i = 0; i < r->rec.n; i++) {
		const struct record *rec = &r->rec.v[i];
		if (unmeasured(rec->key))
			continue;
		buf_addf(&initdata, "%s=%s", rec->key, rec->value);
		buf_add(&initdata, "", 1);
		if (!strcmp(rec->key, "enclave_allow")) {
			allow_exec |= !strcmp(rec->value, "exec");
			allow_output |= !strcmp(rec->value, "output");
			allow_input |= !strcmp(rec->value, "input");
		} else if (!strcmp(rec->key, "enclave_secret") && argc + 2 <= MAX_ATTESTER_ARGS - 6) {
			char *sep = strchr(rec->value, UNIT_SEP);
			if (!sep) {
				reply_error(r->to, EINVAL, "container %s: enclave_secret %s: expected NAME\x1fRESOURCE", id, rec->value);
				buf_free(&initdata);
				return -1;
			}
			*sep = '=';
			argv[argc++] = "--secret";
			argv[argc++] = xstrdup(rec->value);
			*sep = UNIT_SEP;
			have_secrets = true;
		}
	}
	if (have_secrets) {
		if (guest_find_port("kbs", port, sizeof port) < 0) {
			reply_error(r->to, ENOENT, "container %s: secrets are asked for, but the VM has no port to the key broker", id);
			buf_free(&initdata);
			return -1;
		}
		if (mount_secrets_dir() < 0) {
			reply_error(r->to, errno, "container %s: mount a tmpfs for the secrets: %s", id, errtext(errno));
			buf_free(&initdata);
			return -1;
		}
		argv[argc++] = "--kbs", argv[argc++] = port;
		argv[argc++] = "--secrets", argv[argc++] = ENCLAVE_SECRETS_DIR;
		argv[argc++] = "--owner", argv[argc++] = owner;
	}
	argv[argc] = NULL;
	char err[1024];
	uint64_t started = now_mono_ms();
	int rc = run_attester(argv, &initdata, err, sizeof err);
	buf_free(&initdata);
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--secret"))
			free(argv[++i]);
	if (rc < 0) {
		reply_error(r->to, EACCES, "container %s: enclave attestation: %s", id, err);
		return -1;
	}
	log_msg("container %s: the create request is measured (PCR 8)%s in %llu ms", id, have_secrets ? " and its secrets fetched" : "",
		(unsigned long long)(now_mono_ms() - started));
	return 0;
}

/* The policy's say on a process's stdio, before it is prepared: the inherited streams the host may not read or
 * write become /dev/null; a terminal, which carries both, needs both allowed. */
static const char *adjust_stdio(struct procspec *p)
{
	if (p->terminal && p->stdio != STDIO_NULL && (!allow_output || !allow_input))
		return "a terminal relays input and output, which the enclave's policy does not both allow";
	if (p->stdio == STDIO_INHERIT) {
		if (!allow_input)
			stdio_make_inherited_null(0);
		if (!allow_output) {
			stdio_make_inherited_null(1);
			stdio_make_inherited_null(2);
		}
	}
	return NULL;
}

void enclave_filter_streams(struct stdio_plan *io)
{
	if (io->in < 0 || (allow_output && allow_input))
		return;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return; /* the process is not made: stdio_prepare's fds say the same */
	/* The process's ends of the pipes close: the relay sees their end at once and says so to the host. */
	for (int i = allow_input ? 1 : 0; i < 3; i++) {
		if (i > 0 && allow_output)
			break;
		close(io->child[i]);
		io->child[i] = null;
	}
}

const char *enclave_adjust_container(struct ctrspec *s)
{
	const char *refused = adjust_stdio(&s->proc);
	if (refused || !have_secrets)
		return refused;
	struct mount_spec m = {
		.dest = (char *)ENCLAVE_SECRETS_MOUNT, .source = (char *)ENCLAVE_SECRETS_DIR, .fstype = (char *)"bind", .data = (char *)"",
		.flags = MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
	};
	s->mounts = xrealloc(s->mounts, (s->nmounts + 1) * sizeof *s->mounts);
	s->mounts[s->nmounts++] = m;
	return NULL;
}

const char *enclave_adjust_exec(struct procspec *p)
{
	if (!allow_exec)
		return "the enclave's policy does not allow exec";
	return adjust_stdio(p);
}
