#define _GNU_SOURCE
#include "utf8-text.h"

#include <string.h>

#include "util.h"

/*
 * The length of the well-formed sequence at text (available bytes), or 0 when it is ill-formed; then *skip is
 * the length of its maximal subpart (the lead byte and the continuation bytes that were valid), at least 1.
 */
static size_t sequence_length(const unsigned char *text, size_t available, size_t *skip)
{
	unsigned char lead = text[0];
	size_t needed;
	unsigned char low = 0x80, high = 0xbf;
	if (lead < 0x80)
		return 1;
	if (lead >= 0xc2 && lead <= 0xdf) {
		needed = 1;
	} else if (lead >= 0xe0 && lead <= 0xef) {
		needed = 2;
		if (lead == 0xe0)
			low = 0xa0;
		if (lead == 0xed)
			high = 0x9f;
	} else if (lead >= 0xf0 && lead <= 0xf4) {
		needed = 3;
		if (lead == 0xf0)
			low = 0x90;
		if (lead == 0xf4)
			high = 0x8f;
	} else {
		*skip = 1;
		return 0;
	}
	for (size_t i = 1; i <= needed; i++) {
		if (i >= available || text[i] < low || text[i] > high) {
			*skip = i;
			return 0;
		}
		low = 0x80;
		high = 0xbf;
	}
	return needed + 1;
}

bool utf8_valid(const char *text, size_t len)
{
	size_t skip;
	for (size_t at = 0; at < len;) {
		size_t n = sequence_length((const unsigned char *)text + at, len - at, &skip);
		if (n == 0)
			return false;
		at += n;
	}
	return true;
}

char *utf8_sanitized(const char *text, size_t len)
{
	/* U+FFFD is 3 bytes and replaces at least one. */
	char *out = xmalloc(len * 3 + 1);
	size_t used = 0, skip;
	for (size_t at = 0; at < len;) {
		size_t n = sequence_length((const unsigned char *)text + at, len - at, &skip);
		if (n > 0) {
			memcpy(out + used, text + at, n);
			used += n;
			at += n;
		} else {
			memcpy(out + used, "\xef\xbf\xbd", 3);
			used += 3;
			at += skip;
		}
	}
	out[used] = 0;
	return out;
}

unsigned utf8_next(const char *text, size_t *size)
{
	const unsigned char *s = (const unsigned char *)text;
	if (s[0] == 0) {
		*size = 0;
		return 0;
	}
	if (s[0] < 0x80) {
		*size = 1;
		return s[0];
	}
	if (s[0] < 0xe0) {
		*size = 2;
		return (unsigned)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
	}
	if (s[0] < 0xf0) {
		*size = 3;
		return (unsigned)(s[0] & 0x0f) << 12 | (unsigned)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
	}
	*size = 4;
	return (unsigned)(s[0] & 0x07) << 18 | (unsigned)(s[1] & 0x3f) << 12 | (unsigned)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
}
