/* Linux namespace types: their names in records and in /proc/PID/ns, their CLONE_* flags. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

enum ns_index { NS_USER, NS_MNT, NS_PID, NS_UTS, NS_IPC, NS_NET, NS_CGROUP, NS_COUNT };

struct ns_info {
	const char *name; /* as in `ns` records */
	const char *proc; /* as in /proc/PID/ns/ */
	int flag;
};

extern const struct ns_info ns_info[NS_COUNT];

int ns_index(const char *name); /* -1 if unknown */
/* Opens /proc/PID/ns/TYPE (pid 0: this process; for NS_PID, the pid namespace the process is in). */
int ns_open(pid_t pid, int index);
/* Whether the process's namespace of this type is the agent's own. */
bool ns_is_agents(pid_t pid, int index);
