/* OCI createContainer and startContainer hooks, run by the container's init process. */
#pragma once
#include <stddef.h>

#include "spec.h"

/*
 * Runs the hooks of one phase in order, each with the state JSON on its stdin and its hook_timeout; the
 * first failure is reported with child_fail ("createContainer hook PATH: exit status 1: OUTPUT").
 */
void hooks_run(const struct ctrspec *s, enum hook_phase phase, const char *state, size_t state_len);
