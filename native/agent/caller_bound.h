/*
 * An agent started for a sandbox its caller has not recorded yet (in state.json, or a shim's sandbox directory)
 * ends with that caller: were the caller to die first, nobody would ever find the agent again. The parent-death
 * signal is SIGTERM (the agent stops as on `shutdown`, ending whatever it made) and lasts until `recorded`.
 */
#pragma once
#include "request.h"

/* Binds us to the process at the other end of fd (the socketpair the caller started us with), which must be our
 * parent. 0, or -1 when it has died already. */
int caller_bound_init(int fd);
/* `recorded`: the caller has recorded the sandbox; from now on the agent outlives it. */
void op_recorded(struct request *r);
