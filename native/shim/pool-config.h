/* The shim pool's size and idle time from the runtime configuration file containerd names in start's options. */
#pragma once
#include <stddef.h>

#include "warm-pool.h"

/*
 * options is what containerd wrote on start's stdin: a google.protobuf.Any holding runtimeoptions.v1.Options, whose
 * config_path names runbox's runtime configuration (src/shim/runtime-config.ts). Its "pool" object's "size",
 * "idleSeconds" and "vms" replace the pool's. Anything missing or unreadable leaves the pool as it was (Create reports a
 * configuration it cannot use).
 */
void pool_config_from_options(struct pool *pool, const unsigned char *options, size_t len);
