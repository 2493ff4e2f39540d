/* The KBS protocol's guest side (kbs-client.h). */
#define _GNU_SOURCE
#include "kbs-client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"
#include "json-reader.h"
#include "kcrypto.h"
#include "util.h"

#define KBS_PROTOCOL_VERSION "0.1.0"
#define KBS_PREFIX "/kbs/v0"
#define SESSION_COOKIE "kbs-session-id"
/* Where the vTPM's maker left the EK certificate (TCG EK Credential Profile: an ECC NIST P-256 EK's). */
#define EK_CERT_NV_INDEX 0x01c0000au
/* The PCRs quoted: 0-15 but 10, which the guest kernel's IMA extends (src/drivers/enclave/launch-measurement.ts). */
#define QUOTED_PCRS 0xfbffu
#define RESPONSE_TIMEOUT_MS 30000
#define MAX_RESPONSE (4u << 20)
#define JWE_ALG "ECDH-ES+A256KW"

/* The DER SubjectPublicKeyInfo of a P-256 key, up to its uncompressed point. */
static const uint8_t p256_spki_prefix[] = { 0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
					    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04 };

struct kbs {
	int port;
	char cookie[128];
};

struct response {
	int status;
	struct buf body;
};

/* Base64 of data into a new string. */
static char *b64(const uint8_t *data, size_t n, bool url)
{
	char *out = xmalloc(n / 3 * 4 + 8);
	base64_encode(data, n, out, url);
	return out;
}

static void hex(const uint8_t *data, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", data[i]);
}

/* A JSON value at a path of object keys: a string (decoded into out, which is made), or the whole text of an
 * object (raw) when the last key names one. */
struct json_get {
	const char *const *path;
	size_t depth_left;
	char *out;
	size_t cap;
	bool found;
};

static bool json_member(struct json_reader *r, const char *key, bool key_fits, int depth, void *context)
{
	struct json_get *g = context;
	if (!key_fits || g->found || strcmp(key, g->path[0]))
		return json_skip_value(r, depth + 1);
	if (g->depth_left > 1) {
		struct json_get inner = { g->path + 1, g->depth_left - 1, g->out, g->cap, false };
		json_skip_space(r);
		if (r->at < r->end && *r->at == '{') {
			if (!json_read_object(r, depth + 1, json_member, &inner))
				return false;
			g->found = inner.found;
			return true;
		}
		return json_skip_value(r, depth + 1);
	}
	bool fits;
	json_skip_space(r);
	if (r->at < r->end && *r->at == '"') {
		if (!json_read_string(r, g->out, g->cap, &fits))
			return false;
		g->found = fits;
		return true;
	}
	return json_skip_value(r, depth + 1);
}

/* The string at path (n keys deep) in json: a new string, or NULL when it is not there. */
static char *json_string(const struct buf *json, const char *const *path, size_t n)
{
	size_t cap = json->len + 1;
	struct json_get g = { path, n, xmalloc(cap), cap, false };
	struct json_reader r = { json->data, json->data + json->len };
	if (!json_read_object(&r, 0, json_member, &g) || !g.found) {
		free(g.out);
		return NULL;
	}
	return g.out;
}

#define JSON_STRING(json, ...) json_string(json, (const char *const[]){ __VA_ARGS__ }, sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *))

/* What the broker said when it refused: ErrorInformation's detail, or the body as it is. */
static const char *refusal(struct response *r)
{
	char *detail = JSON_STRING(&r->body, "detail");
	if (detail) {
		buf_free(&r->body);
		buf_add(&r->body, detail, strlen(detail));
		free(detail);
	}
	return r->body.data ? r->body.data : "(no reason given)";
}

static void read_some(struct kbs *k, struct buf *in, uint64_t deadline)
{
	struct pollfd p = { k->port, POLLIN, 0 };
	int64_t left = (int64_t)(deadline - now_mono_ms());
	if (left <= 0 || poll(&p, 1, (int)left) == 0)
		die("the key broker did not answer within %d s", RESPONSE_TIMEOUT_MS / 1000);
	char chunk[16384];
	ssize_t n = read(k->port, chunk, sizeof chunk);
	if (n < 0 && errno == EINTR)
		return;
	if (n < 0)
		die("read from the key broker's port: %s", strerror(errno));
	if (n == 0) {
		/* No host on the port yet (QEMU not connected) reads as end of file: wait a little. */
		usleep(10000);
		return;
	}
	if (in->len + (size_t)n > MAX_RESPONSE)
		die("the key broker's answer is over %u bytes", MAX_RESPONSE);
	buf_add(in, chunk, (size_t)n);
}

/* One HTTP/1.1 exchange over the port: the status, the body; the session cookie is kept when it is set. */
static void http(struct kbs *k, const char *method, const char *path, const struct buf *body, struct response *out)
{
	struct buf req = { 0 };
	buf_addf(&req, "%s %s HTTP/1.1\r\nHost: kbs\r\nAccept: application/json\r\n", method, path);
	if (k->cookie[0])
		buf_addf(&req, "Cookie: %s=%s\r\n", SESSION_COOKIE, k->cookie);
	if (body)
		buf_addf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body->len);
	buf_add(&req, "\r\n", 2);
	if (body)
		buf_add(&req, body->data, body->len);
	if (write_all(k->port, req.data, req.len) < 0)
		die("write to the key broker's port: %s", strerror(errno));
	buf_free(&req);
	struct buf in = { 0 };
	uint64_t deadline = now_mono_ms() + RESPONSE_TIMEOUT_MS;
	char *end;
	while (!in.data || !(end = memmem(in.data, in.len, "\r\n\r\n", 4)))
		read_some(k, &in, deadline);
	*end = 0;
	size_t header_len = (size_t)(end - in.data) + 4;
	if (sscanf(in.data, "HTTP/1.1 %d", &out->status) != 1)
		die("the key broker's answer is not HTTP/1.1");
	long length = -1;
	for (char *line = strstr(in.data, "\r\n"); line; line = strstr(line, "\r\n")) {
		line += 2;
		if (!strncasecmp(line, "content-length:", 15))
			length = strtol(line + 15, NULL, 10);
		else if (!strncasecmp(line, "set-cookie:", 11)) {
			char *cookie = strstr(line, SESSION_COOKIE "=");
			if (cookie)
				snprintf(k->cookie, sizeof k->cookie, "%.*s", (int)strcspn(cookie + sizeof SESSION_COOKIE, ";\r"),
					 cookie + sizeof SESSION_COOKIE);
		}
	}
	if (length < 0 || (size_t)length > MAX_RESPONSE)
		die("the key broker's answer has no length");
	while (in.len < header_len + (size_t)length)
		read_some(k, &in, deadline);
	out->body = (struct buf){ 0 };
	buf_add(&out->body, in.data + header_len, (size_t)length);
	if (!out->body.data)
		buf_add(&out->body, "", 0);
	buf_free(&in);
}


/* The TEE key as the runtime data holds it: a JWK, its members in order (the runtime data is hashed as written). */
static void tee_pubkey_json(const struct tpm_key *tee, struct buf *out)
{
	char *x = b64(tee->x, 32, true), *y = b64(tee->y, 32, true);
	buf_addf(out, "{\"alg\":\"" JWE_ALG "\",\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
	free(x), free(y);
}

/* JWE (ECDH-ES+A256KW, A256GCM) decrypted with the TEE key's ECDH in the TPM: the plaintext, made here. */
static uint8_t *open_jwe(struct attestation *a, const struct tpm_key *tee, const struct buf *jwe, size_t *len, const char *what)
{
	char *protected = JSON_STRING(jwe, "protected"), *encrypted_key = JSON_STRING(jwe, "encrypted_key"),
	     *iv64 = JSON_STRING(jwe, "iv"), *ct64 = JSON_STRING(jwe, "ciphertext"), *tag64 = JSON_STRING(jwe, "tag");
	if (!protected || !encrypted_key || !iv64 || !ct64 || !tag64)
		die("%s: the key broker's answer is not a JWE", what);
	struct buf header = { 0 };
	buf_reserve(&header, strlen(protected) + 1);
	long header_len = base64_decode(protected, (uint8_t *)header.data, strlen(protected));
	if (header_len < 0)
		die("%s: the JWE's protected header is not base64", what);
	header.len = (size_t)header_len;
	header.data[header.len] = 0;
	char *alg = JSON_STRING(&header, "alg"), *enc = JSON_STRING(&header, "enc"), *ex64 = JSON_STRING(&header, "epk", "x"),
	     *ey64 = JSON_STRING(&header, "epk", "y");
	if (!alg || !enc || strcmp(alg, JWE_ALG) || strcmp(enc, "A256GCM") || !ex64 || !ey64)
		die("%s: a JWE that is not " JWE_ALG "/A256GCM", what);
	uint8_t ex[40], ey[40], wrapped[48], iv[16], tag[20], z[32], kek[32], cek[32];
	if (base64_decode(ex64, ex, sizeof ex) != 32 || base64_decode(ey64, ey, sizeof ey) != 32 ||
	    base64_decode(encrypted_key, wrapped, sizeof wrapped) != 40 || base64_decode(iv64, iv, sizeof iv) != 12 ||
	    base64_decode(tag64, tag, sizeof tag) != 16)
		die("%s: a JWE with fields of the wrong size", what);
	uint8_t *ciphertext = xmalloc(strlen(ct64) + 1);
	long ct_len = base64_decode(ct64, ciphertext, strlen(ct64));
	if (ct_len < 0)
		die("%s: the JWE's ciphertext is not base64", what);
	if (tpm_ecdh_zgen(&a->tpm, tee->handle, ex, ey, z) < 0)
		die("%s: %s", what, a->tpm.err);
	/* Concat KDF, as JWA 4.6.2 and trustee run it: no PartyUInfo, no PartyVInfo. */
	uint8_t counter[4] = { 0, 0, 0, 1 }, alg_len[4] = { 0, 0, 0, sizeof JWE_ALG - 1 }, zero[4] = { 0 }, bits[4] = { 0, 0, 1, 0 };
	if (kc_sha256_parts((const void *const[]){ counter, z, alg_len, JWE_ALG, zero, zero, bits },
			    (const size_t[]){ 4, 32, 4, sizeof JWE_ALG - 1, 4, 4, 4 }, 7, kek) < 0 ||
	    kc_aes256_unwrap(kek, wrapped, 40, cek) < 0)
		die("%s: unwrap the content key: %s", what, errno == EBADMSG ? "it was not wrapped for this TEE key" : strerror(errno));
	uint8_t *plain = xmalloc((size_t)ct_len + 1);
	if (kc_aes256_gcm_decrypt(cek, iv, (const uint8_t *)protected, strlen(protected), ciphertext, (size_t)ct_len, tag, plain) < 0)
		die("%s: decrypt: %s", what, errno == EBADMSG ? "the JWE is not intact" : strerror(errno));
	explicit_bzero(z, sizeof z), explicit_bzero(kek, sizeof kek), explicit_bzero(cek, sizeof cek);
	*len = (size_t)ct_len;
	free(protected), free(encrypted_key), free(iv64), free(ct64), free(tag64), free(alg), free(enc), free(ex64), free(ey64);
	free(ciphertext);
	buf_free(&header);
	return plain;
}

static void write_secret(struct attestation *a, const char *name, const uint8_t *value, size_t len)
{
	if (!name[0] || name[0] == '.' || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(name))
		die("secret %s: not a file name", name);
	char path[512];
	snprintf(path, sizeof path, "%s/%s", a->secrets_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0 || write_all(fd, value, len) < 0 || fchown(fd, a->uid, a->gid) < 0)
		die("write the secret %s: %s", path, strerror(errno));
	close(fd);
}

void attest_and_fetch(struct attestation *a)
{
	struct kbs k = { .port = open(a->kbs_port, O_RDWR | O_NOCTTY | O_CLOEXEC) };
	if (k.port < 0)
		die("open the key broker's port %s: %s", a->kbs_port, strerror(errno));
	/* The TPM's identity: its EK (the maker's template, so the key its certificate names) and that certificate. */
	struct tpm_key ek, ak, tee;
	uint8_t ek_cert[4096], unique[32];
	size_t ek_cert_len;
	if (tpm_create_primary(&a->tpm, TPM_RH_ENDORSEMENT, TPM_KEY_EK, NULL, &ek) < 0 ||
	    tpm_nv_read(&a->tpm, EK_CERT_NV_INDEX, ek_cert, sizeof ek_cert, &ek_cert_len) < 0)
		die("the TPM's endorsement key: %s", a->tpm.err);
	/* A fresh attestation key and TEE key: the unique field (from the TPM's RNG) makes each a new key. */
	if (tpm_get_random(&a->tpm, unique, sizeof unique) < 0 ||
	    tpm_create_primary(&a->tpm, TPM_RH_ENDORSEMENT, TPM_KEY_AK, unique, &ak) < 0)
		die("create an attestation key: %s", a->tpm.err);
	if (tpm_get_random(&a->tpm, unique, sizeof unique) < 0 ||
	    tpm_create_primary(&a->tpm, TPM_RH_NULL, TPM_KEY_ECDH, unique, &tee) < 0)
		die("create the TEE key: %s", a->tpm.err);

	/* Request: the TEE type and the TPM's identity. */
	struct buf body = { 0 };
	struct response r;
	char *cert64 = b64(ek_cert, ek_cert_len, false), *ak64 = b64(ak.public_area, ak.public_len, false);
	buf_addf(&body, "{\"version\":\"" KBS_PROTOCOL_VERSION "\",\"tee\":\"tpm\",\"extra-params\":{\"ak_public\":\"%s\",\"ek_cert\":\"%s\"}}", ak64,
		 cert64);
	free(cert64), free(ak64);
	http(&k, "POST", KBS_PREFIX "/auth", &body, &r);
	buf_free(&body);
	if (r.status != 200)
		die("the key broker refused the request: %s", refusal(&r));
	char *nonce = JSON_STRING(&r.body, "nonce"), *id_object64 = JSON_STRING(&r.body, "extra-params", "id_object"),
	     *secret64 = JSON_STRING(&r.body, "extra-params", "encrypted_secret");
	if (!nonce || !id_object64 || !secret64 || strpbrk(nonce, "\"\\"))
		die("the key broker's challenge is not one for a TPM (nonce, extra-params.id_object, encrypted_secret)");
	buf_free(&r.body);

	/* The credential opens only in the TPM of the certified EK, and only for the attestation key. */
	uint8_t id_object[512], encrypted_secret[512];
	long id_len = base64_decode(id_object64, id_object, sizeof id_object), es_len = base64_decode(secret64, encrypted_secret, sizeof encrypted_secret);
	if (id_len < 0 || es_len < 0)
		die("the key broker's credential is not base64");
	struct tpm_blob credential;
	if (tpm_activate_credential(&a->tpm, ak.handle, ek.handle, id_object, (size_t)id_len, encrypted_secret, (size_t)es_len, &credential) < 0)
		die("open the key broker's credential: %s", a->tpm.err);

	/* The runtime data (the nonce and the TEE key) is what the quote vouches for: its hash is the quote's qualifying data. */
	struct buf runtime = { 0 };
	buf_addf(&runtime, "{\"nonce\":\"%s\",\"tee-pubkey\":", nonce);
	tee_pubkey_json(&tee, &runtime);
	buf_add(&runtime, "}", 1);
	uint8_t report_data[32];
	if (kc_sha256(runtime.data, runtime.len, report_data) < 0)
		die("hash the runtime data: %s", strerror(errno));
	struct tpm_blob quote, signature;
	uint8_t pcrs[24][32];
	size_t npcrs;
	if (tpm_quote(&a->tpm, ak.handle, QUOTED_PCRS, report_data, sizeof report_data, &quote, &signature) < 0 ||
	    tpm_pcr_read(&a->tpm, QUOTED_PCRS, pcrs, &npcrs) < 0)
		die("quote the PCRs: %s", a->tpm.err);

	/* Attestation. */
	uint8_t spki[sizeof p256_spki_prefix + 64];
	memcpy(spki, p256_spki_prefix, sizeof p256_spki_prefix);
	memcpy(spki + sizeof p256_spki_prefix, ak.x, 32);
	memcpy(spki + sizeof p256_spki_prefix + 32, ak.y, 32);
	char *spki64 = b64(spki, sizeof spki, false), *cred64 = b64(credential.data, credential.len, false),
	     *msg64 = b64(quote.data, quote.len, false), *sig64 = b64(signature.data, signature.len, false);
	buf_addf(&body, "{\"runtime-data\":%s,\"tee-evidence\":{\"ak_public\":\"%s\",\"credential\":\"%s\",\"tpm_quote\":{\"message\":\"%s\",\"pcrs\":[",
		 runtime.data, spki64, cred64, msg64);
	for (size_t i = 0; i < npcrs; i++) {
		char value[65];
		hex(pcrs[i], 32, value);
		buf_addf(&body, "%s\"%s\"", i ? "," : "", value);
	}
	buf_addf(&body, "],\"signature\":\"%s\"}}}", sig64);
	free(spki64), free(cred64), free(msg64), free(sig64);
	explicit_bzero(credential.data, sizeof credential.data);
	http(&k, "POST", KBS_PREFIX "/attest", &body, &r);
	buf_free(&body);
	buf_free(&runtime);
	if (r.status != 200)
		die("the key broker refused the evidence: %s", refusal(&r));
	buf_free(&r.body);

	for (size_t i = 0; i < a->nsecrets; i++) {
		char path[300], what[300];
		snprintf(path, sizeof path, KBS_PREFIX "/resource/%s", a->secrets[i].resource);
		snprintf(what, sizeof what, "secret %s (%s)", a->secrets[i].name, a->secrets[i].resource);
		http(&k, "GET", path, NULL, &r);
		if (r.status != 200)
			die("%s: the key broker refused: %s", what, refusal(&r));
		size_t len;
		uint8_t *value = open_jwe(a, &tee, &r.body, &len, what);
		write_secret(a, a->secrets[i].name, value, len);
		explicit_bzero(value, len);
		free(value);
		buf_free(&r.body);
	}
	tpm_flush(&a->tpm, tee.handle);
	tpm_flush(&a->tpm, ak.handle);
	tpm_flush(&a->tpm, ek.handle);
	free(nonce), free(id_object64), free(secret64);
	close(k.port);
}
