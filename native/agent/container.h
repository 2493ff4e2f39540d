/*
 * The agent's side of a container's life: `create` forks the process that sets up its namespaces and init,
 * then follows the init through the sync channel (hooks point, created, exec'd); `finish_create` and
 * `start` let it go on; `delete` ends it.
 */
#pragma once
#include "registry.h"
#include "request.h"

void op_create(struct request *r);
void op_finish_create(struct request *r);
void op_start(struct request *r);
void op_delete(struct request *r);
/* Writes the `cgroup_set` records into the container's cgroups (resources of a live container). */
void op_update(struct request *r);

/* After a reap: answers a failed op or a delete once every process of the container is gone. */
void container_settle(struct container *c);
/* Whether s is an acceptable container id (it names a cgroup directory). */
bool container_id_valid(const char *id);
