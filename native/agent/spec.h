/*
 * What `create` and `exec` ask for, decoded from their records (PROTOCOL.md, "Process description" and
 * `create`). Strings point into the request payload; only the arrays are allocated here.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "ns.h"

enum stdio_mode { STDIO_NULL, STDIO_INHERIT, STDIO_STREAM };

struct rlimit_spec {
	int resource;
	uint64_t soft, hard;
};

struct procspec {
	char **argv, **envp; /* NULL-terminated */
	const char *cwd;
	uid_t uid;
	gid_t gid;
	gid_t *agids;
	size_t nagids;
	bool has_umask;
	mode_t umask;
	struct rlimit_spec *rlimits;
	size_t nrlimits;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	bool no_new_privs;
	bool has_oom_score_adj;
	int oom_score_adj;
	bool terminal;
	const char *console_socket;
	unsigned short width, height;
	enum stdio_mode stdio;
	const char *apparmor_profile, *selinux_label; /* applied at exec; NULL: none */
	/* With stdio=inherit: take fds 0-2 from this (host) process instead of the agent's own, 0 for none. */
	pid_t stdio_from_pid;
};

struct mount_spec {
	char *dest, *source, *fstype, *data;
	unsigned long flags, propagation;
};

struct device_spec {
	char *path;
	char type; /* c, b or p */
	unsigned major, minor;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

enum hook_phase { HOOK_CREATE_CONTAINER, HOOK_START_CONTAINER };

struct hook_spec {
	enum hook_phase phase;
	const char *path;
	char **argv, **envp; /* NULL-terminated */
	size_t nargv, nenvp;
	unsigned timeout; /* seconds, 0: none */
};

struct ctrspec {
	const char *id, *rootfs;
	bool readonly_rootfs;
	bool ns_new[NS_COUNT];
	const char *ns_path[NS_COUNT]; /* joined namespaces */
	char **uid_map, **gid_map;
	size_t nuid_map, ngid_map;
	const char *hostname, *domainname;
	unsigned long rootfs_propagation;
	struct mount_spec *mounts;
	size_t nmounts;
	struct device_spec *devices;
	size_t ndevices;
	char **masked, **readonly_paths, **sysctls;
	size_t nmasked, nreadonly_paths, nsysctls;
	struct hook_spec *hooks;
	size_t nhooks;
	struct procspec proc;
};

/* 0, or -1 with a message in err. */
int procspec_parse(const struct records *r, struct procspec *p, char *err, size_t errlen);
void procspec_free(struct procspec *p);
int ctrspec_parse(const struct records *r, struct ctrspec *s, char *err, size_t errlen);
void ctrspec_free(struct ctrspec *s);

/* Whether the container has a mount namespace of its own (new or joined); without, it shares the agent's. */
static inline bool ctrspec_own_mntns(const struct ctrspec *s)
{
	return s->ns_new[NS_MNT] || s->ns_path[NS_MNT];
}

/* Whether the container process runs in a user namespace other than the agent's. */
static inline bool ctrspec_userns(const struct ctrspec *s)
{
	return s->ns_new[NS_USER] || s->ns_path[NS_USER];
}
