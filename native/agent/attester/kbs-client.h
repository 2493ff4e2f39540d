/*
 * The attester's side of trustee's KBS protocol (RCAR), over HTTP/1.1 on a virtio-serial port: Request (the TEE
 * type, the TPM's EK certificate and a fresh attestation key), Challenge (a nonce and a credential made to the EK
 * for that key), Attestation (a TPM quote of the PCRs whose qualifying data is the hash of the runtime data: the
 * nonce and a TEE key held in the TPM), then each resource as a JWE encrypted to that TEE key.
 */
#pragma once
#include "attestation.h"

/* Attests and writes each secret asked for into the secrets directory; dies saying why on any failure. */
void attest_and_fetch(struct attestation *a);
