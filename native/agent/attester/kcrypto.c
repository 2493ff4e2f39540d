/* The kernel's crypto API over AF_ALG (kcrypto.h). */
#define _GNU_SOURCE
#include "kcrypto.h"

#include <errno.h>
#include <linux/if_alg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_ALG
#define SOL_ALG 279
#endif

/* An operation socket of the transform `name` of `type` keyed with key (NULL: none); -1 with errno. */
static int alg_op(const char *type, const char *name, const void *key, size_t key_len, unsigned authsize)
{
	struct sockaddr_alg sa = { .salg_family = AF_ALG };
	strncpy((char *)sa.salg_type, type, sizeof sa.salg_type - 1);
	strncpy((char *)sa.salg_name, name, sizeof sa.salg_name - 1);
	int tfm = socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (tfm < 0)
		return -1;
	int op = -1;
	if (bind(tfm, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    (!key || setsockopt(tfm, SOL_ALG, ALG_SET_KEY, key, (socklen_t)key_len) == 0) &&
	    (!authsize || setsockopt(tfm, SOL_ALG, ALG_SET_AEAD_AUTHSIZE, NULL, authsize) == 0))
		op = accept4(tfm, NULL, 0, SOCK_CLOEXEC);
	int err = errno;
	close(tfm);
	errno = err;
	return op;
}

int kc_sha256_parts(const void *const *parts, const size_t *lens, size_t n, uint8_t digest[32])
{
	int op = alg_op("hash", "sha256", NULL, 0, 0);
	if (op < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		for (size_t at = 0; at < lens[i];) {
			ssize_t sent = send(op, (const uint8_t *)parts[i] + at, lens[i] - at, MSG_MORE);
			if (sent < 0) {
				int err = errno;
				close(op);
				errno = err;
				return -1;
			}
			at += (size_t)sent;
		}
	}
	/* The last (empty) send without MSG_MORE finishes the hash. */
	ssize_t got = send(op, "", 0, 0) < 0 ? -1 : read(op, digest, 32);
	int err = errno;
	close(op);
	errno = err;
	if (got != 32) {
		if (got >= 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

int kc_sha256(const void *data, size_t len, uint8_t digest[32])
{
	return kc_sha256_parts((const void *const[]){ data }, (const size_t[]){ len }, 1, digest);
}

/* One sendmsg of the operation, its IV and associated data length, and the data; then one read of the result. */
static int alg_crypt(int op, int direction, const uint8_t *iv, size_t iv_len, size_t assoc_len, const void *in,
		     size_t in_len, void *out, size_t out_len)
{
	char control[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct af_alg_iv) + 16) + CMSG_SPACE(sizeof(uint32_t))] = { 0 };
	struct iovec iov = { (void *)in, in_len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_ALG, c->cmsg_type = ALG_SET_OP, c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &direction, sizeof direction);
	c = CMSG_NXTHDR(&msg, c);
	c->cmsg_level = SOL_ALG, c->cmsg_type = ALG_SET_IV, c->cmsg_len = CMSG_LEN(sizeof(struct af_alg_iv) + 16);
	struct af_alg_iv *alg_iv = (struct af_alg_iv *)CMSG_DATA(c);
	alg_iv->ivlen = (uint32_t)iv_len;
	memcpy(alg_iv->iv, iv, iv_len);
	c = CMSG_NXTHDR(&msg, c);
	c->cmsg_level = SOL_ALG, c->cmsg_type = ALG_SET_AEAD_ASSOCLEN, c->cmsg_len = CMSG_LEN(sizeof(uint32_t));
	uint32_t assoc = (uint32_t)assoc_len;
	memcpy(CMSG_DATA(c), &assoc, sizeof assoc);
	if (sendmsg(op, &msg, 0) != (ssize_t)in_len)
		return -1;
	ssize_t got = read(op, out, out_len);
	if (got != (ssize_t)out_len) {
		if (got >= 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

int kc_aes256_unwrap(const uint8_t kek[32], const uint8_t *in, size_t in_len, uint8_t *out)
{
	if (in_len < 24 || in_len % 8) {
		errno = EINVAL;
		return -1;
	}
	/* The kernel's kw(aes) takes the first semiblock as its IV and hands back the recovered one in its place: it
	 * must be RFC 3394's default IV, or the unwrapped key is not the one that was wrapped. */
	int op = alg_op("skcipher", "kw(aes)", kek, 32, 0);
	if (op < 0)
		return -1;
	int rc = alg_crypt(op, ALG_OP_DECRYPT, in, 8, 0, in + 8, in_len - 8, out, in_len - 8);
	int err = errno;
	close(op);
	errno = err;
	return rc;
}

int kc_aes256_gcm_decrypt(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
			  const uint8_t *ciphertext, size_t len, const uint8_t tag[16], uint8_t *plaintext)
{
	size_t in_len = aad_len + len + 16;
	uint8_t *in = malloc(in_len), *out = malloc(aad_len + len + 1);
	if (!in || !out) {
		free(in), free(out);
		errno = ENOMEM;
		return -1;
	}
	memcpy(in, aad, aad_len);
	memcpy(in + aad_len, ciphertext, len);
	memcpy(in + aad_len + len, tag, 16);
	int op = alg_op("aead", "gcm(aes)", key, 32, 16);
	int rc = op < 0 ? -1 : alg_crypt(op, ALG_OP_DECRYPT, iv, 12, aad_len, in, in_len, out, aad_len + len);
	int err = errno;
	if (op >= 0)
		close(op);
	if (rc == 0)
		memcpy(plaintext, out + aad_len, len);
	explicit_bzero(out, aad_len + len);
	free(in), free(out);
	errno = err;
	return rc;
}
