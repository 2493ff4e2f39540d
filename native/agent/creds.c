#define _GNU_SOURCE
#include "creds.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caller_reaps.h"
#include "child.h"
#include "util.h"

int cap_last_cap = 40;

void creds_read_cap_last_cap(void)
{
	char text[16];
	if (read_file("/proc/sys/kernel/cap_last_cap", text, sizeof text) == 0 && text[0])
		cap_last_cap = atoi(text);
}

static int capset_sets(uint64_t effective, uint64_t permitted, uint64_t inheritable)
{
	struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = {
		{ (uint32_t)effective, (uint32_t)permitted, (uint32_t)inheritable },
		{ (uint32_t)(effective >> 32), (uint32_t)(permitted >> 32), (uint32_t)(inheritable >> 32) },
	};
	return (int)syscall(SYS_capset, &header, data);
}

void creds_apply(const struct procspec *p)
{
	/* The bounding set first, while CAP_SETPCAP is still effective. */
	for (int cap = 0; cap <= cap_last_cap && cap < 64; cap++)
		if (!(p->cap_bounding & (1ull << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			child_fail(errno, "drop capability %d from the bounding set", cap);

	/* Keep the permitted set across setuid; the effective set is restored by capset below. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		child_fail(errno, "prctl(PR_SET_KEEPCAPS)");
	if (setgroups(p->nagids, p->agids) < 0 && !(errno == EPERM && p->nagids == 0))
		child_fail(errno, "setgroups");
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		child_fail(errno, "setgid %u", p->gid);
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		child_fail(errno, "setuid %u", p->uid);
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);

	if (capset_sets(p->cap_effective, p->cap_permitted, p->cap_inheritable) < 0)
		child_fail(errno, "capset");
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	for (int cap = 0; cap <= cap_last_cap && cap < 64; cap++)
		if (p->cap_ambient & (1ull << cap))
			/* As runc: an ambient capability that is not also permitted and inheritable is skipped. */
			prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);

	if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
	/* A change of credentials clears the parent-death signal: set it again (unless the parent is the caller). */
	if (!caller_reaps_child())
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
}
