#ifndef RUNBOX_SHIM_SHA256_H
#define RUNBOX_SHIM_SHA256_H
#include <stddef.h>

/* The SHA-256 digest of data, as 64 lowercase hex digits and a NUL, into hex. */
void sha256_hex(const void *data, size_t length, char hex[65]);

#endif
