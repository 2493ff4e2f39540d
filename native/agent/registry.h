/* The agent's bookkeeping: every container it made and every process in it, until `delete`. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "request.h"

/* Where a container's init process is in create → finish_create → start. */
enum phase {
	PHASE_SPAWNING,	 /* cloned, setting up its mounts */
	PHASE_HOOKS,	 /* waiting for finish_create (the runtime's prestart/createRuntime hooks run now) */
	PHASE_FINISHING, /* finish_create sent: createContainer hooks, pivot_root... */
	PHASE_CREATED,	 /* waiting for start */
	PHASE_STARTING,	 /* start sent: startContainer hooks, then execve */
	PHASE_RUNNING,
	PHASE_STOPPED,
};

struct waiter {
	struct reply_to to;
	struct waiter *next;
};

struct relay;
struct watch;
struct proc;

/* What the reaper does with a kind of process (a container's init, an exec'd process), told by whoever made it. */
struct proc_kind {
	/* Reads what the child said on its sync channel, before its exit is recorded. */
	void (*sync_drain)(struct proc *p);
	/* After its exit is recorded: answers what waited on it once the container's processes allow. */
	void (*settle)(struct proc *p);
};

struct proc {
	struct container *ctr;
	const struct proc_kind *kind;
	char *exec_id; /* NULL: the container's init process */
	pid_t pid;     /* 0 until known */
	bool exited;
	int exit_status; /* exit code, or 128 + signal */
	uint64_t exited_at;
	/* The channel to the child until it execs (sync.h), and the request waiting on it. */
	int sync_fd;
	struct watch *sync_watch;
	struct reply_to pending;
	/* An error the child reported: answered once it is reaped. */
	char *error;
	int error_errno;
	struct relay *relay; /* stdio=stream, or a pty the agent relays */
	/* stdio=stream: the request whose connection relays its stdio and gets its exit event after it. */
	struct reply_to stream_to;
	struct waiter *waiters;
	struct proc *next;
};

struct container {
	char *id;
	enum phase phase;
	struct proc *init;
	struct proc *execs;
	pid_t stage1_pid; /* the short-lived process that sets up namespaces and clones init */
	char *uid_map, *gid_map; /* written once stage 1 has unshared its user namespace */
	bool own_pidns;
	/* The init's pid namespace, held open so that its inode number cannot be reused by another container's
	 * namespace while this one is known: processes are matched to the container by that number. */
	int pidns_fd;
	dev_t pidns_dev;
	ino_t pidns_ino;
	struct cgroups *cgroups; /* NULL where the host has no cgroup hierarchy */
	struct seccomp_filter *seccomp; /* installed by each of its processes before execve; NULL: none */
	struct seccomp_listener *seccomp_listener; /* where the filter's listeners go (SCMP_ACT_NOTIFY); NULL: none */
	/* Without a mount namespace of its own: the rootfs, whose bind (mounts and all) the agent detaches at the end. */
	char *shared_mntns_rootfs;
	/* Guest mode: the overlay mounted as its rootfs from a disk image (vm.h), unmounted when it is forgotten. */
	char *guest_rootfs;
	const char *freezer;	 /* its freezer directory, or NULL */
	struct watch *oom_watch;
	bool create_failed; /* forgotten once reaped */
	bool finish_at_once; /* create's `finish=1`: no finish_create follows, create answers once it has finished */
	bool transient; /* create's `transient=1` (a VM's warm-up): its end neither powers the VM off nor is reported */
	struct reply_to deleting;
	struct container *next;
};

extern struct container *containers;

struct container *ctr_find(const char *id);
struct container *ctr_add(const char *id);
/* Frees the container, its processes and everything they hold (closes fds, ends relays). */
void ctr_forget(struct container *c);
/* Whether every process the agent made for the container has been reaped. */
bool ctr_all_reaped(const struct container *c);

struct proc *proc_add(struct container *c, const char *exec_id);
/* exec_id NULL or empty: the init process. */
struct proc *proc_find(struct container *c, const char *exec_id);
struct proc *proc_by_pid(pid_t pid);
void proc_forget(struct proc *p);
/* creating, created, running or stopped */
const char *proc_status(const struct proc *p);
