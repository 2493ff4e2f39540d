/*
 * The kernel's crypto API through AF_ALG sockets (the guest kernel's own SHA-256 and AES, its gcm and kw
 * templates): the attester carries no crypto code of its own. Each returns 0, or -1 with errno.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

int kc_sha256(const void *data, size_t len, uint8_t digest[32]);
/* A SHA-256 over several parts, in order. */
int kc_sha256_parts(const void *const *parts, const size_t *lens, size_t n, uint8_t digest[32]);
/* RFC 3394 AES key unwrap with a 256-bit key encryption key: out gets in_len - 8 bytes; EBADMSG if it is not
 * intact. */
int kc_aes256_unwrap(const uint8_t kek[32], const uint8_t *in, size_t in_len, uint8_t *out);
/* AES-256-GCM decryption with a 96-bit IV and a 128-bit tag: EBADMSG when the tag does not match. */
int kc_aes256_gcm_decrypt(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
			  const uint8_t *ciphertext, size_t len, const uint8_t tag[16], uint8_t *plaintext);
