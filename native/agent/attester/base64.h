/* Base64 (RFC 4648) for the KBS protocol's JSON: standard for its own fields, URL-safe unpadded for JOSE's. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Encodes n bytes into out (room for 4 * ceil(n / 3) + 1), NUL-terminated. */
void base64_encode(const uint8_t *in, size_t n, char *out, bool url);
/* Decodes either alphabet, padded or not, into out (room for 3 * strlen(in) / 4): the length, or -1 if it is not
 * base64. */
long base64_decode(const char *in, uint8_t *out, size_t capacity);
