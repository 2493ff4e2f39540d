/* What one run of the attester is asked to do, and how it gives up (attestation.c). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <sys/types.h>

#include "tpm2.h"

/* The PCR the initdata is measured into, as Confidential Containers' TPM attester does. */
#define INITDATA_PCR 8
#define MAX_SECRETS 64

struct secret_request {
	const char *name, *resource;
};

struct attestation {
	struct tpm tpm;
	uint8_t initdata[32];
	const char *kbs_port, *secrets_dir;
	unsigned uid, gid;
	struct secret_request secrets[MAX_SECRETS];
	size_t nsecrets;
};

/* Prints the message (one line) on stderr and exits 1. */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
