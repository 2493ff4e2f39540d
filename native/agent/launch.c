#define _GNU_SOURCE
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "creds.h"
#include "seccomp_filter.h"
#include "util.h"

void launch_chdir(const struct procspec *p)
{
	if (chdir(p->cwd) == 0)
		return;
	if (errno != ENOENT || mkdir_all(p->cwd, 0755) < 0 || chdir(p->cwd) < 0)
		child_fail(errno, "cwd %s", p->cwd);
}

/* Go's findExecutable: 0, or the errno that says why path will not do. */
static int check_executable(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR;
	if (!(st.st_mode & 0111))
		return EACCES;
	return 0;
}

static const char *env_path(const struct procspec *p)
{
	const char *path = NULL;
	for (char **e = p->envp; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5; /* the last one wins, as with setenv */
	return path ? path : "/bin:/usr/bin"; /* execvp's default */
}

char *launch_lookup(const struct procspec *p)
{
	const char *name = p->argv[0];
	if (strchr(name, '/')) {
		int err = check_executable(name);
		if (err == ENOENT || err == ENOTDIR)
			child_fail_plain(err, "exec: \"%s\": stat %s: %s", name, name, errtext(err));
		if (err)
			child_fail_plain(err, "exec: \"%s\": %s", name, errtext(err));
		return xstrdup(name);
	}
	const char *dirs = env_path(p);
	if (!*name)
		child_fail_plain(ENOENT, "exec: \"\": executable file not found in $PATH");
	for (const char *d = dirs;; d++) {
		const char *end = strchrnul(d, ':');
		char path[4096];
		/* An empty PATH entry means the current directory. */
		int n = end == d ? snprintf(path, sizeof path, "./%s", name)
				 : snprintf(path, sizeof path, "%.*s/%s", (int)(end - d), d, name);
		if (n < (int)sizeof path && check_executable(path) == 0)
			return xstrdup(path);
		if (!*end)
			break;
		d = end;
	}
	child_fail_plain(ENOENT, "exec: \"%s\": executable file not found in $PATH", name);
}

/* Enough for the pages a start-up touches in most executables; a huge one is not read whole into a small VM. */
#define PREFETCH_BYTES (4 << 20)

void launch_prefetch(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)posix_fadvise(fd, 0, PREFETCH_BYTES, POSIX_FADV_WILLNEED);
	close(fd);
}

void launch_rlimits(const struct procspec *p)
{
	for (size_t i = 0; i < p->nrlimits; i++) {
		struct rlimit rl = { (rlim_t)p->rlimits[i].soft, (rlim_t)p->rlimits[i].hard };
		if (setrlimit(p->rlimits[i].resource, &rl) < 0)
			child_fail(errno, "setrlimit %d", p->rlimits[i].resource);
	}
}

/* The AppArmor profile and SELinux label the program execs into (runc's apparmor.ApplyProfile, SetExecLabel). */
static void apply_lsm(const struct procspec *p)
{
	if (p->apparmor_profile) {
		char text[1024];
		snprintf(text, sizeof text, "exec %s", p->apparmor_profile);
		if (write_file("/proc/self/attr/apparmor/exec", text) < 0 &&
		    (errno != ENOENT || write_file("/proc/self/attr/exec", text) < 0))
			child_fail(errno, "apply the AppArmor profile %s", p->apparmor_profile);
	}
	if (p->selinux_label && write_file("/proc/self/attr/exec", p->selinux_label) < 0)
		child_fail(errno, "set the SELinux label %s", p->selinux_label);
}

_Noreturn void launch_exec(const struct procspec *p, const char *path, int sync_fd, const struct seccomp_filter *filter)
{
	apply_lsm(p);
	if (!p->no_new_privs)
		seccomp_install(filter);
	creds_apply(p);
	if (p->has_umask)
		umask(p->umask);
	/* Only 0-2 and the sync fd (close-on-exec: its EOF tells the agent execve worked) go past this point. */
	if (sync_fd != 3) {
		if (dup3(sync_fd, 3, O_CLOEXEC) < 0)
			child_fail(errno, "dup the sync fd");
		child_init(3, NULL);
	}
	close_range(4, ~0u, 0);
	if (p->no_new_privs)
		seccomp_install(filter);
	execve(path, p->argv, p->envp);
	child_fail_plain(errno, "exec: \"%s\": %s", path, errtext(errno));
}
