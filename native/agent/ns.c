#define _GNU_SOURCE
#include "ns.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const struct ns_info ns_info[NS_COUNT] = {
	[NS_USER] = { "user", "user", CLONE_NEWUSER },
	[NS_MNT] = { "mount", "mnt", CLONE_NEWNS },
	[NS_PID] = { "pid", "pid", CLONE_NEWPID },
	[NS_UTS] = { "uts", "uts", CLONE_NEWUTS },
	[NS_IPC] = { "ipc", "ipc", CLONE_NEWIPC },
	[NS_NET] = { "net", "net", CLONE_NEWNET },
	[NS_CGROUP] = { "cgroup", "cgroup", CLONE_NEWCGROUP },
};

int ns_index(const char *name)
{
	for (int i = 0; i < NS_COUNT; i++)
		if (!strcmp(ns_info[i].name, name))
			return i;
	return -1;
}

static void ns_path(char *path, size_t len, pid_t pid, int index)
{
	if (pid)
		snprintf(path, len, "/proc/%d/ns/%s", pid, ns_info[index].proc);
	else
		snprintf(path, len, "/proc/self/ns/%s", ns_info[index].proc);
}

int ns_open(pid_t pid, int index)
{
	char path[64];
	ns_path(path, sizeof path, pid, index);
	return open(path, O_RDONLY | O_CLOEXEC);
}

bool ns_is_agents(pid_t pid, int index)
{
	char path[64];
	struct stat a, b;
	ns_path(path, sizeof path, pid, index);
	if (stat(path, &a) < 0)
		return true;
	ns_path(path, sizeof path, 0, index);
	if (stat(path, &b) < 0)
		return false;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}
