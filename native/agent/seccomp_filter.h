/*
 * A container's seccomp filter (config.json's linux.seccomp, PROTOCOL.md "seccomp"): compiled by the agent with
 * libseccomp when the container is created, as runc compiles it (rules per syscall name, unknown names skipped,
 * the -ENOSYS stub for syscalls newer than the profile), and installed by each of its processes as the last
 * step before execve.
 */
#pragma once
#include <stddef.h>

#include "frame.h"

struct seccomp_filter;

/*
 * The filter the `seccomp_*` records of r describe: NULL with err empty when they ask for none; NULL with a
 * message in err when they cannot be compiled.
 */
struct seccomp_filter *seccomp_compile(const struct records *r, char *err, size_t errlen);
void seccomp_free(struct seccomp_filter *f);
/*
 * In a child that is about to exec: installs f (nothing when NULL). Without no_new_privs this needs
 * CAP_SYS_ADMIN, so it comes before the capabilities are dropped; with it, after. A filter with SCMP_ACT_NOTIFY
 * rules is installed with SECCOMP_FILTER_FLAG_NEW_LISTENER, and the listener is sent to the agent (SYNC_SECCOMP),
 * which answers SYNC_SECCOMP_DONE once it has handed it on. Reports a failure and exits.
 */
void seccomp_install(const struct seccomp_filter *f);
