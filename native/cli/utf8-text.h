/* UTF-8 as Node decodes it: what a string read back by the TypeScript holds. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* Whether text is well-formed UTF-8 throughout (what Node reads back unchanged). */
bool utf8_valid(const char *text, size_t len);

/*
 * text as Node's Buffer.toString('utf8') sees it: each ill-formed sequence (its maximal subpart, as the WHATWG
 * decoder has it) becomes U+FFFD. A new string (malloc), NUL-terminated.
 */
char *utf8_sanitized(const char *text, size_t len);

/* The code point at text (well-formed, as utf8_sanitized leaves it) and its length in *size; 0 in *size at the end. */
unsigned utf8_next(const char *text, size_t *size);
