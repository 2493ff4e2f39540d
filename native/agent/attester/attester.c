/*
 * runbox-attester: the guest half of an enclave's attestation, run by the agent (agent/enclave.c) with the
 * initdata on stdin. It measures the initdata into the TPM (PCR 8) before the agent acts on it; then, when secrets
 * are asked for, it proves the guest's state to the key broker over the `kbs` virtio-serial port (kbs-client.h)
 * and writes each secret it is given into the secrets directory (a tmpfs). One line on stderr says why it failed.
 *
 *   runbox-attester [--kbs PORT --secrets DIR --owner UID:GID --secret NAME=RESOURCE...] < INITDATA
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attestation.h"
#include "kbs-client.h"
#include "kcrypto.h"
#include "tpm2.h"
#include "util.h"

#define TPM_DEVICE "/dev/tpmrm0"
#define MAX_INITDATA (8u << 20)

static void read_initdata(uint8_t digest[32])
{
	struct buf data = { 0 };
	for (;;) {
		buf_reserve(&data, 64 * 1024);
		ssize_t n = read(0, data.data + data.len, data.cap - 1 - data.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read the initdata: %s", strerror(errno));
		if (n == 0)
			break;
		data.len += (size_t)n;
		if (data.len >= MAX_INITDATA)
			die("the initdata is larger than %u bytes", MAX_INITDATA);
	}
	if (kc_sha256(data.data, data.len, digest) < 0)
		die("hash the initdata (the kernel's sha256 through AF_ALG): %s", strerror(errno));
	buf_free(&data);
}

int main(int argc, char **argv)
{
	struct attestation a = { 0 };
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--kbs") && i + 1 < argc)
			a.kbs_port = argv[++i];
		else if (!strcmp(argv[i], "--secrets") && i + 1 < argc)
			a.secrets_dir = argv[++i];
		else if (!strcmp(argv[i], "--owner") && i + 1 < argc) {
			if (sscanf(argv[++i], "%u:%u", &a.uid, &a.gid) != 2)
				die("--owner %s: expected UID:GID", argv[i]);
		} else if (!strcmp(argv[i], "--secret") && i + 1 < argc && a.nsecrets < MAX_SECRETS) {
			char *eq = strchr(argv[++i], '=');
			if (!eq)
				die("--secret %s: expected NAME=RESOURCE", argv[i]);
			*eq = 0;
			a.secrets[a.nsecrets++] = (struct secret_request){ argv[i], eq + 1 };
		} else {
			die("usage: runbox-attester [--kbs PORT --secrets DIR --owner UID:GID --secret NAME=RESOURCE...] < INITDATA");
		}
	}
	if (a.nsecrets && (!a.kbs_port || !a.secrets_dir))
		die("secrets need --kbs and --secrets");
	read_initdata(a.initdata);
	if (tpm_open(&a.tpm, TPM_DEVICE) < 0)
		die("the TPM: %s (an enclave guest needs its vTPM)", a.tpm.err);
	if (tpm_pcr_extend(&a.tpm, INITDATA_PCR, a.initdata) < 0)
		die("measure the initdata into PCR %d: %s", INITDATA_PCR, a.tpm.err);
	if (a.nsecrets)
		attest_and_fetch(&a);
	tpm_close(&a.tpm);
	return 0;
}
