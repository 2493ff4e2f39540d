/* Dropping to the process's identity: groups, gid, uid, capabilities, no_new_privs. */
#pragma once
#include "spec.h"

/* The highest capability number the kernel knows (read once by the agent at start-up). */
extern int cap_last_cap;
void creds_read_cap_last_cap(void);
/* Runs in the child just before execve; reports failures with child_fail. */
void creds_apply(const struct procspec *p);
