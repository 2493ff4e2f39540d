/* SHA-256 (FIPS 180-4), only for naming the shim's socket as containerd's shims do: sha256(address/ns/group). */
#pragma once
#include <stddef.h>

/* The SHA-256 digest of data, as 64 lowercase hex digits and a NUL, into hex. */
void sha256_hex(const void *data, size_t len, char hex[65]);
