/* TPM 2.0 commands marshalled by hand (tpm2.h). */
#define _GNU_SOURCE
#include "tpm2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TPM_ST_NO_SESSIONS 0x8001
#define TPM_ST_SESSIONS 0x8002
#define TPM_RS_PW 0x40000009u
#define TPM_ALG_AES 0x0006
#define TPM_ALG_SHA256 0x000b
#define TPM_ALG_NULL 0x0010
#define TPM_ALG_ECDSA 0x0018
#define TPM_ALG_ECC 0x0023
#define TPM_ALG_CFB 0x0043
#define TPM_ECC_NIST_P256 0x0003
#define TPM_SE_POLICY 0x01

#define TPM_CC_CREATE_PRIMARY 0x131
#define TPM_CC_ACTIVATE_CREDENTIAL 0x147
#define TPM_CC_NV_READ 0x14e
#define TPM_CC_POLICY_SECRET 0x151
#define TPM_CC_ECDH_ZGEN 0x154
#define TPM_CC_QUOTE 0x158
#define TPM_CC_FLUSH_CONTEXT 0x165
#define TPM_CC_NV_READ_PUBLIC 0x169
#define TPM_CC_START_AUTH_SESSION 0x176
#define TPM_CC_PCR_READ 0x17e
#define TPM_CC_PCR_EXTEND 0x182
#define TPM_CC_GET_RANDOM 0x17b

/* PolicySecret(TPM_RH_ENDORSEMENT): the EK template's authPolicy (TCG EK Credential Profile). */
static const uint8_t ek_policy[32] = { 0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
				       0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
				       0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa };

/* A command being written: the overflow flag makes every later write a no-op, checked once at the end. */
struct out {
	uint8_t d[4096];
	size_t n;
	bool overflow;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->overflow || n > sizeof o->d - o->n) {
		o->overflow = true;
		return;
	}
	memcpy(o->d + o->n, p, n);
	o->n += n;
}

static void put_u8(struct out *o, uint8_t v)
{
	put(o, &v, 1);
}

static void put_u16(struct out *o, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	put(o, b, 2);
}

static void put_u32(struct out *o, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	put(o, b, 4);
}

static void put_sized(struct out *o, const void *p, size_t n)
{
	put_u16(o, (uint16_t)n);
	put(o, p, n);
}

/* A response being read. */
struct in {
	const uint8_t *d;
	size_t n, at;
	bool short_read;
};

static const uint8_t *get(struct in *i, size_t n)
{
	if (i->short_read || n > i->n - i->at) {
		i->short_read = true;
		return NULL;
	}
	const uint8_t *p = i->d + i->at;
	i->at += n;
	return p;
}

static uint16_t get_u16(struct in *i)
{
	const uint8_t *p = get(i, 2);
	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

static uint32_t get_u32(struct in *i)
{
	const uint8_t *p = get(i, 4);
	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

/* A TPM2B: its bytes (NULL when short), its size in *len. */
static const uint8_t *get_sized(struct in *i, size_t *len)
{
	*len = get_u16(i);
	return get(i, *len);
}

static int fail(struct tpm *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof t->err, fmt, ap);
	va_end(ap);
	return -1;
}

int tpm_open(struct tpm *t, const char *path)
{
	t->err[0] = 0;
	t->fd = open(path, O_RDWR | O_CLOEXEC);
	return t->fd < 0 ? fail(t, "open %s: %s", path, strerror(errno)) : 0;
}

void tpm_close(struct tpm *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* An authorization of a command's area: the password session (empty password) or a policy session. */
struct auth {
	uint32_t session;
};

/*
 * Sends the command (handles, the authorizations, params) and reads its response into resp; on success `params`
 * reads the response parameters, after the `nhandles` handles that go to out_handles.
 */
static int transact(struct tpm *t, const char *what, uint32_t cc, const uint32_t *handles, size_t nhandles,
		    const struct auth *auths, size_t nauths, const struct out *params, uint8_t *resp, size_t resp_cap,
		    uint32_t *out_handles, size_t nout, struct in *out_params)
{
	struct out c = { 0 };
	put_u16(&c, nauths ? TPM_ST_SESSIONS : TPM_ST_NO_SESSIONS);
	put_u32(&c, 0); /* the size, written below */
	put_u32(&c, cc);
	for (size_t i = 0; i < nhandles; i++)
		put_u32(&c, handles[i]);
	if (nauths) {
		put_u32(&c, (uint32_t)(nauths * 9));
		for (size_t i = 0; i < nauths; i++) {
			put_u32(&c, auths[i].session);
			put_u16(&c, 0); /* nonceCaller */
			put_u8(&c, 0); /* attributes: the session ends with the command */
			put_u16(&c, 0); /* the password, or no HMAC */
		}
	}
	if (params)
		put(&c, params->d, params->n);
	if (c.overflow || (params && params->overflow))
		return fail(t, "%s: the command is too large", what);
	c.d[2] = (uint8_t)(c.n >> 24), c.d[3] = (uint8_t)(c.n >> 16), c.d[4] = (uint8_t)(c.n >> 8), c.d[5] = (uint8_t)c.n;
	if (write(t->fd, c.d, c.n) != (ssize_t)c.n)
		return fail(t, "%s: write to the TPM: %s", what, strerror(errno));
	ssize_t n = read(t->fd, resp, resp_cap);
	if (n < 10)
		return fail(t, "%s: read from the TPM: %s", what, n < 0 ? strerror(errno) : "a short response");
	struct in r = { resp, (size_t)n, 0, false };
	uint16_t tag = get_u16(&r);
	uint32_t size = get_u32(&r), rc = get_u32(&r);
	if (size != (size_t)n)
		return fail(t, "%s: the TPM's response says %u bytes, %zd came", what, size, n);
	if (rc)
		return fail(t, "%s: TPM response code 0x%03x", what, rc);
	for (size_t i = 0; i < nout; i++)
		out_handles[i] = get_u32(&r);
	size_t param_size = tag == TPM_ST_SESSIONS ? get_u32(&r) : r.n - r.at;
	const uint8_t *p = get(&r, param_size);
	if (!p)
		return fail(t, "%s: a truncated response", what);
	*out_params = (struct in){ p, param_size, 0, false };
	return 0;
}

#define HANDLES(...) (const uint32_t[]){ __VA_ARGS__ }, sizeof((const uint32_t[]){ __VA_ARGS__ }) / sizeof(uint32_t)
static const struct auth password = { TPM_RS_PW };

int tpm_pcr_extend(struct tpm *t, unsigned pcr, const uint8_t digest[32])
{
	struct out p = { 0 };
	put_u32(&p, 1);
	put_u16(&p, TPM_ALG_SHA256);
	put(&p, digest, 32);
	uint8_t resp[64];
	struct in r;
	return transact(t, "TPM2_PCR_Extend", TPM_CC_PCR_EXTEND, HANDLES(pcr), &password, 1, &p, resp, sizeof resp, NULL, 0, &r);
}

int tpm_get_random(struct tpm *t, uint8_t *out, size_t n)
{
	struct out p = { 0 };
	put_u16(&p, (uint16_t)n);
	uint8_t resp[128];
	struct in r;
	if (transact(t, "TPM2_GetRandom", TPM_CC_GET_RANDOM, NULL, 0, NULL, 0, &p, resp, sizeof resp, NULL, 0, &r) < 0)
		return -1;
	size_t len;
	const uint8_t *bytes = get_sized(&r, &len);
	if (!bytes || len != n)
		return fail(t, "TPM2_GetRandom: %zu bytes for %zu", len, n);
	memcpy(out, bytes, n);
	return 0;
}

static void put_public(struct out *o, enum tpm_key_kind kind, const uint8_t *unique)
{
	struct out a = { 0 };
	put_u16(&a, TPM_ALG_ECC);
	put_u16(&a, TPM_ALG_SHA256);
	uint32_t common = TPMA_FIXED_TPM | TPMA_FIXED_PARENT | TPMA_SENSITIVE_DATA_ORIGIN;
	switch (kind) {
	case TPM_KEY_EK:
		put_u32(&a, common | TPMA_ADMIN_WITH_POLICY | TPMA_RESTRICTED | TPMA_DECRYPT);
		put_sized(&a, ek_policy, sizeof ek_policy);
		put_u16(&a, TPM_ALG_AES), put_u16(&a, 128), put_u16(&a, TPM_ALG_CFB);
		put_u16(&a, TPM_ALG_NULL);
		break;
	case TPM_KEY_AK:
		put_u32(&a, common | TPMA_USER_WITH_AUTH | TPMA_RESTRICTED | TPMA_SIGN);
		put_sized(&a, NULL, 0);
		put_u16(&a, TPM_ALG_NULL);
		put_u16(&a, TPM_ALG_ECDSA), put_u16(&a, TPM_ALG_SHA256);
		break;
	case TPM_KEY_ECDH:
		put_u32(&a, common | TPMA_USER_WITH_AUTH | TPMA_DECRYPT);
		put_sized(&a, NULL, 0);
		put_u16(&a, TPM_ALG_NULL);
		put_u16(&a, TPM_ALG_NULL);
		break;
	}
	put_u16(&a, TPM_ECC_NIST_P256);
	put_u16(&a, TPM_ALG_NULL); /* kdf */
	static const uint8_t zeros[32];
	if (kind == TPM_KEY_EK) {
		put_sized(&a, zeros, 32);
		put_sized(&a, zeros, 32);
	} else {
		put_sized(&a, unique ? unique : zeros, 32);
		put_sized(&a, NULL, 0);
	}
	put_sized(o, a.d, a.n);
	o->overflow |= a.overflow;
}

/* Reads a TPM2B_PUBLIC of an ECC key: keeps its bytes and its point. */
static int read_public(struct tpm *t, const char *what, struct in *r, struct tpm_key *key)
{
	size_t start = r->at, len;
	const uint8_t *area = get_sized(r, &len);
	if (!area || r->at - start > sizeof key->public_area)
		return fail(t, "%s: a bad public area", what);
	memcpy(key->public_area, r->d + start, r->at - start);
	key->public_len = r->at - start;
	struct in a = { area, len, 0, false };
	get_u16(&a), get_u16(&a), get_u32(&a); /* type, nameAlg, attributes */
	size_t n;
	get_sized(&a, &n); /* authPolicy */
	if (get_u16(&a) != TPM_ALG_NULL)
		get_u16(&a), get_u16(&a);
	if (get_u16(&a) != TPM_ALG_NULL)
		get_u16(&a);
	get_u16(&a); /* curve */
	if (get_u16(&a) != TPM_ALG_NULL)
		get_u16(&a);
	size_t xl, yl;
	const uint8_t *x = get_sized(&a, &xl), *y = get_sized(&a, &yl);
	if (!x || !y || xl > 32 || yl > 32)
		return fail(t, "%s: a public area with no P-256 point", what);
	memset(key->x, 0, 32), memset(key->y, 0, 32);
	memcpy(key->x + 32 - xl, x, xl);
	memcpy(key->y + 32 - yl, y, yl);
	return 0;
}

int tpm_create_primary(struct tpm *t, uint32_t hierarchy, enum tpm_key_kind kind, const uint8_t *unique, struct tpm_key *key)
{
	struct out p = { 0 };
	put_u16(&p, 4), put_u16(&p, 0), put_u16(&p, 0); /* inSensitive: no authValue, no data */
	put_public(&p, kind, unique);
	put_u16(&p, 0); /* outsideInfo */
	put_u32(&p, 0); /* creationPCR */
	uint8_t resp[2048];
	struct in r;
	if (transact(t, "TPM2_CreatePrimary", TPM_CC_CREATE_PRIMARY, HANDLES(hierarchy), &password, 1, &p, resp, sizeof resp,
		     &key->handle, 1, &r) < 0)
		return -1;
	return read_public(t, "TPM2_CreatePrimary", &r, key);
}

int tpm_flush(struct tpm *t, uint32_t handle)
{
	struct out p = { 0 };
	put_u32(&p, handle);
	uint8_t resp[64];
	struct in r;
	return transact(t, "TPM2_FlushContext", TPM_CC_FLUSH_CONTEXT, NULL, 0, NULL, 0, &p, resp, sizeof resp, NULL, 0, &r);
}

/* A policy session that satisfies the EK's policy: PolicySecret with the endorsement hierarchy's empty password. */
static int ek_policy_session(struct tpm *t, uint32_t *session)
{
	struct out p = { 0 };
	uint8_t nonce[16];
	if (tpm_get_random(t, nonce, sizeof nonce) < 0)
		return -1;
	put_sized(&p, nonce, sizeof nonce);
	put_u16(&p, 0); /* no salt */
	put_u8(&p, TPM_SE_POLICY);
	put_u16(&p, TPM_ALG_NULL); /* no parameter encryption */
	put_u16(&p, TPM_ALG_SHA256);
	uint8_t resp[256];
	struct in r;
	if (transact(t, "TPM2_StartAuthSession", TPM_CC_START_AUTH_SESSION, HANDLES(TPM_RH_NULL, TPM_RH_NULL), NULL, 0, &p, resp,
		     sizeof resp, session, 1, &r) < 0)
		return -1;
	struct out q = { 0 };
	put_u16(&q, 0), put_u16(&q, 0), put_u16(&q, 0); /* nonceTPM, cpHashA, policyRef */
	put_u32(&q, 0); /* expiration */
	if (transact(t, "TPM2_PolicySecret", TPM_CC_POLICY_SECRET, HANDLES(TPM_RH_ENDORSEMENT, *session), &password, 1, &q, resp,
		     sizeof resp, NULL, 0, &r) < 0) {
		tpm_flush(t, *session);
		return -1;
	}
	return 0;
}

int tpm_activate_credential(struct tpm *t, uint32_t ak, uint32_t ek, const uint8_t *id_object, size_t id_object_len,
			    const uint8_t *encrypted_secret, size_t encrypted_secret_len, struct tpm_blob *secret)
{
	uint32_t session = 0;
	if (ek_policy_session(t, &session) < 0)
		return -1;
	struct out p = { 0 };
	put_sized(&p, id_object, id_object_len);
	put_sized(&p, encrypted_secret, encrypted_secret_len);
	const struct auth auths[2] = { password, { session } };
	uint8_t resp[512];
	struct in r;
	if (transact(t, "TPM2_ActivateCredential", TPM_CC_ACTIVATE_CREDENTIAL, HANDLES(ak, ek), auths, 2, &p, resp, sizeof resp,
		     NULL, 0, &r) < 0) {
		tpm_flush(t, session);
		return -1;
	}
	size_t len;
	const uint8_t *cert = get_sized(&r, &len);
	if (!cert || len > sizeof secret->data)
		return fail(t, "TPM2_ActivateCredential: a bad response");
	memcpy(secret->data, cert, len);
	secret->len = len;
	return 0;
}

static void put_pcr_selection(struct out *o, uint32_t mask)
{
	put_u32(o, 1);
	put_u16(o, TPM_ALG_SHA256);
	put_u8(o, 3);
	put_u8(o, (uint8_t)mask), put_u8(o, (uint8_t)(mask >> 8)), put_u8(o, (uint8_t)(mask >> 16));
}

int tpm_quote(struct tpm *t, uint32_t ak, uint32_t pcr_mask, const uint8_t *qualifying, size_t qualifying_len,
	      struct tpm_blob *attest, struct tpm_blob *signature)
{
	struct out p = { 0 };
	put_sized(&p, qualifying, qualifying_len);
	put_u16(&p, TPM_ALG_NULL); /* the key's own scheme */
	put_pcr_selection(&p, pcr_mask);
	uint8_t resp[2048];
	struct in r;
	if (transact(t, "TPM2_Quote", TPM_CC_QUOTE, HANDLES(ak), &password, 1, &p, resp, sizeof resp, NULL, 0, &r) < 0)
		return -1;
	size_t len;
	const uint8_t *quoted = get_sized(&r, &len);
	if (!quoted || len > sizeof attest->data)
		return fail(t, "TPM2_Quote: a bad response");
	memcpy(attest->data, quoted, len);
	attest->len = len;
	size_t rest = r.n - r.at;
	if (rest > sizeof signature->data)
		return fail(t, "TPM2_Quote: a bad signature");
	memcpy(signature->data, r.d + r.at, rest);
	signature->len = rest;
	return 0;
}

int tpm_pcr_read(struct tpm *t, uint32_t pcr_mask, uint8_t values[][32], size_t *count)
{
	*count = 0;
	uint32_t left = pcr_mask & 0xffffff;
	while (left) {
		struct out p = { 0 };
		put_pcr_selection(&p, left);
		uint8_t resp[1024];
		struct in r;
		if (transact(t, "TPM2_PCR_Read", TPM_CC_PCR_READ, NULL, 0, NULL, 0, &p, resp, sizeof resp, NULL, 0, &r) < 0)
			return -1;
		get_u32(&r); /* pcrUpdateCounter */
		uint32_t banks = get_u32(&r), read_mask = 0;
		for (uint32_t b = 0; b < banks; b++) {
			get_u16(&r);
			uint8_t size = 0;
			const uint8_t *sel = get(&r, 1);
			if (sel)
				size = sel[0];
			const uint8_t *bits = get(&r, size);
			for (unsigned i = 0; bits && i < size && i < 3; i++)
				read_mask |= (uint32_t)bits[i] << (8 * i);
		}
		uint32_t n = get_u32(&r);
		for (unsigned pcr = 0, i = 0; pcr < 24 && i < n; pcr++) {
			if (!(read_mask & (1u << pcr)))
				continue;
			size_t len;
			const uint8_t *v = get_sized(&r, &len);
			if (!v || len != 32)
				return fail(t, "TPM2_PCR_Read: a bad response");
			memcpy(values[*count], v, 32);
			(*count)++, i++;
		}
		if (r.short_read || !read_mask)
			return fail(t, "TPM2_PCR_Read: a bad response");
		left &= ~read_mask;
	}
	return 0;
}

int tpm_ecdh_zgen(struct tpm *t, uint32_t key, const uint8_t x[32], const uint8_t y[32], uint8_t z[32])
{
	struct out point = { 0 }, p = { 0 };
	put_sized(&point, x, 32);
	put_sized(&point, y, 32);
	put_sized(&p, point.d, point.n);
	uint8_t resp[256];
	struct in r;
	if (transact(t, "TPM2_ECDH_ZGen", TPM_CC_ECDH_ZGEN, HANDLES(key), &password, 1, &p, resp, sizeof resp, NULL, 0, &r) < 0)
		return -1;
	size_t len, xl;
	get_sized(&r, &len);
	struct in q = { r.d + 2, len, 0, false };
	const uint8_t *zx = get_sized(&q, &xl);
	if (!zx || xl > 32)
		return fail(t, "TPM2_ECDH_ZGen: a bad response");
	memset(z, 0, 32);
	memcpy(z + 32 - xl, zx, xl);
	return 0;
}

int tpm_nv_read(struct tpm *t, uint32_t index, uint8_t *out, size_t capacity, size_t *len)
{
	struct out p = { 0 };
	uint8_t resp[2048];
	struct in r;
	if (transact(t, "TPM2_NV_ReadPublic", TPM_CC_NV_READ_PUBLIC, HANDLES(index), NULL, 0, NULL, resp, sizeof resp, NULL, 0, &r) < 0)
		return -1;
	size_t public_len;
	const uint8_t *public_area = get_sized(&r, &public_len);
	if (!public_area || public_len < 12)
		return fail(t, "TPM2_NV_ReadPublic: a bad response");
	size_t size = (size_t)public_area[public_len - 2] << 8 | public_area[public_len - 1];
	if (size > capacity)
		return fail(t, "NV index 0x%08x holds %zu bytes, more than %zu", index, size, capacity);
	for (size_t at = 0; at < size;) {
		size_t chunk = size - at > 768 ? 768 : size - at;
		p = (struct out){ 0 };
		put_u16(&p, (uint16_t)chunk);
		put_u16(&p, (uint16_t)at);
		if (transact(t, "TPM2_NV_Read", TPM_CC_NV_READ, HANDLES(index, index), &password, 1, &p, resp, sizeof resp, NULL, 0, &r) < 0)
			return -1;
		size_t got;
		const uint8_t *data = get_sized(&r, &got);
		if (!data || got != chunk)
			return fail(t, "TPM2_NV_Read: a bad response");
		memcpy(out + at, data, got);
		at += got;
	}
	*len = size;
	return 0;
}
