/*
 * The channel between the agent and a child it is setting up (a container's init, or an exec'd process):
 * a SOCK_SEQPACKET socketpair carrying one-letter messages, some with a payload or an fd. The child's end is
 * close-on-exec, so its EOF after `start`/`exec` without an error message means execve succeeded.
 */
#pragma once
#include <stddef.h>

enum sync_tag {
	SYNC_USERNS = 'U',   /* child: I unshared my user namespace, write its maps */
	SYNC_MAPPED = 'M',   /* agent: maps written */
	SYNC_PID = 'P',	     /* child: the init's pid, as the agent sees it (decimal) */
	SYNC_HOOKS = 'H',    /* init: mounts done, waiting for finish_create */
	SYNC_CONTINUE = 'F', /* agent: finish_create, with the state JSON */
	SYNC_CREATED = 'C',  /* init: waiting for start (with the pty master when the agent relays it) */
	SYNC_START = 'S',    /* agent: start, with the state JSON */
	SYNC_PTY = 'T',	     /* exec child: the pty master the agent relays */
	SYNC_SECCOMP = 'L',  /* child: its seccomp filter's listener (SCMP_ACT_NOTIFY), for the seccomp agent */
	SYNC_SECCOMP_DONE = 'D', /* agent: the listener was handed to the seccomp agent */
	SYNC_ERROR = 'E',    /* child: "ERRNO message"; it exits next */
};

/* fds[0]: the agent's end (non-blocking), fds[1]: the child's; both close-on-exec. */
int sync_pair(int fds[2]);
/* pass_fd -1: none. 0 or -1. */
int sync_send(int fd, char tag, const void *data, size_t len, int pass_fd);
/* 1: a message (data malloc'd, NUL-terminated; *passed_fd -1 if none), 0: EOF, -1: error/EAGAIN. */
int sync_recv(int fd, char *tag, char **data, size_t *len, int *passed_fd);

/*
 * Reads every message waiting on p->sync_fd (the agent's end, non-blocking) and hands each to on_message; on
 * EOF or an error calls on_closed. Stops when the fd is closed (either callback may close the channel).
 */
struct proc;
void sync_drain(struct proc *p, void (*on_message)(struct proc *p, char tag, char *data, int passed_fd),
		void (*on_closed)(struct proc *p));
