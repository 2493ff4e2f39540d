/*
 * The TPM 2.0 commands the attester sends through the kernel's resource manager (/dev/tpmrm0), marshalled by
 * hand: PCR extend, primary ECC P-256 keys (the EK from its standard template, an attestation key, a TEE key for
 * ECDH), credential activation under the EK's policy, a quote, and NV reads of the EK certificate. Every function
 * returns 0, or -1 with a message in the tpm's err.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define TPM_RH_ENDORSEMENT 0x4000000bu
#define TPM_RH_NULL 0x40000007u

/* TPMA_OBJECT bits. */
#define TPMA_FIXED_TPM (1u << 1)
#define TPMA_FIXED_PARENT (1u << 4)
#define TPMA_SENSITIVE_DATA_ORIGIN (1u << 5)
#define TPMA_USER_WITH_AUTH (1u << 6)
#define TPMA_ADMIN_WITH_POLICY (1u << 7)
#define TPMA_RESTRICTED (1u << 16)
#define TPMA_DECRYPT (1u << 17)
#define TPMA_SIGN (1u << 18)

struct tpm {
	int fd;
	char err[256];
};

/* An ECC P-256 key's public area as the TPM returned it (TPM2B_PUBLIC, marshalled) and its point. */
struct tpm_key {
	uint32_t handle;
	uint8_t public_area[512];
	size_t public_len;
	uint8_t x[32], y[32];
};

/* A sized buffer the TPM returned. */
struct tpm_blob {
	uint8_t data[1024];
	size_t len;
};

int tpm_open(struct tpm *t, const char *path);
void tpm_close(struct tpm *t);
int tpm_pcr_extend(struct tpm *t, unsigned pcr, const uint8_t digest[32]);
/* n (at most 32) bytes from the TPM's RNG: early in a guest's boot the kernel's may not be ready yet (reading it
 * would then wait ~1 s for jitter entropy under TCG). */
int tpm_get_random(struct tpm *t, uint8_t *out, size_t n);
/* A primary key in `hierarchy`: the EK template when ek, else an unrestricted ECDH key (decrypt) or a restricted
 * signing key (sign), with `unique` (32 bytes, may be NULL) making it fresh. */
enum tpm_key_kind { TPM_KEY_EK, TPM_KEY_AK, TPM_KEY_ECDH };
int tpm_create_primary(struct tpm *t, uint32_t hierarchy, enum tpm_key_kind kind, const uint8_t *unique, struct tpm_key *key);
int tpm_flush(struct tpm *t, uint32_t handle);
/* TPM2_ActivateCredential of a credential made to ek for ak's name: the secret it holds. */
int tpm_activate_credential(struct tpm *t, uint32_t ak, uint32_t ek, const uint8_t *id_object, size_t id_object_len,
			    const uint8_t *encrypted_secret, size_t encrypted_secret_len, struct tpm_blob *secret);
/* TPM2_Quote of the SHA-256 PCRs in `pcr_mask` with `qualifying` as its extra data: the TPMS_ATTEST and the
 * TPMT_SIGNATURE, each as the TPM marshalled it. */
int tpm_quote(struct tpm *t, uint32_t ak, uint32_t pcr_mask, const uint8_t *qualifying, size_t qualifying_len,
	      struct tpm_blob *attest, struct tpm_blob *signature);
/* The SHA-256 PCRs in pcr_mask, lowest first, 32 bytes each, into values (room for 24). */
int tpm_pcr_read(struct tpm *t, uint32_t pcr_mask, uint8_t values[][32], size_t *count);
/* TPM2_ECDH_ZGen: the x coordinate of key's private scalar times the point (x, y). */
int tpm_ecdh_zgen(struct tpm *t, uint32_t key, const uint8_t x[32], const uint8_t y[32], uint8_t z[32]);
/* The contents of NV index `index` (up to out's size). */
int tpm_nv_read(struct tpm *t, uint32_t index, uint8_t *out, size_t capacity, size_t *len);
