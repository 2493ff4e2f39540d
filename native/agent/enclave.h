/*
 * The agent in an enclave's guest: an initramfs that holds the attester (ENCLAVE_ATTESTER) is an enclave's, and
 * its agent measures every create request it acts on into the TPM first (the initdata: the request less the
 * records that name one invocation, as the host's src/drivers/enclave/initdata.ts computes it), fetches the
 * secrets it names through the attester, and obeys the policy in it (`enclave_allow` records: exec, output,
 * input). An enclave VM runs one container; it is never a template's clone.
 */
#pragma once
#include <stdbool.h>

#include "request.h"
#include "spec.h"
#include "stdio.h"

#define ENCLAVE_ATTESTER "/bin/runbox-attester"
/* Where the secrets are in the guest (a tmpfs of their own), and where the container sees them. */
#define ENCLAVE_SECRETS_DIR "/run/runbox-secrets"
#define ENCLAVE_SECRETS_MOUNT "/run/secrets"

extern bool enclave_mode;

/* At the guest's start: whether this is an enclave (its initramfs has the attester). */
void enclave_detect(void);
/* `create`, before anything else: measures the request and fetches its secrets. 0, or -1 once it has replied the
 * error. */
int enclave_begin_create(struct request *r, const char *id);
/* The parsed container: the policy's stdio, the secrets mount. NULL, or why it is refused. */
const char *enclave_adjust_container(struct ctrspec *s);
/* `exec`: NULL when the policy allows it (its stdio then adjusted as the container's), else why not. */
const char *enclave_adjust_exec(struct procspec *p);
/* After stdio_prepare, for relayed streams (stdio=stream): what the host may not read or write is /dev/null to
 * the process, and the relay ends it at once. */
void enclave_filter_streams(struct stdio_plan *io);
