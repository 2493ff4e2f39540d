#define _GNU_SOURCE
#include "json-reader.h"

#include <string.h>

void json_skip_space(struct json_reader *r)
{
	while (r->at < r->end && (*r->at == ' ' || *r->at == '\t' || *r->at == '\n' || *r->at == '\r'))
		r->at++;
}

bool json_take(struct json_reader *r, char c)
{
	json_skip_space(r);
	if (r->at >= r->end || *r->at != c)
		return false;
	r->at++;
	return true;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool read_hex4(struct json_reader *r, unsigned *code)
{
	if (r->end - r->at < 4)
		return false;
	*code = 0;
	for (int i = 0; i < 4; i++) {
		int digit = hex_digit(r->at[i]);
		if (digit < 0)
			return false;
		*code = *code << 4 | (unsigned)digit;
	}
	r->at += 4;
	return true;
}

/* Appends code point cp as UTF-8; false when out is full. */
static bool put_utf8(char *out, size_t len, size_t *used, unsigned cp)
{
	char bytes[4];
	size_t n;
	if (cp < 0x80) {
		bytes[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		bytes[0] = (char)(0xc0 | cp >> 6);
		bytes[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		bytes[0] = (char)(0xe0 | cp >> 12);
		bytes[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		bytes[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		bytes[0] = (char)(0xf0 | cp >> 18);
		bytes[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		bytes[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		bytes[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (*used + n >= len)
		return false;
	memcpy(out + *used, bytes, n);
	*used += n;
	return true;
}

/* The code point of the escape after a backslash; false when it is not one JSON has. */
static bool read_escape(struct json_reader *r, unsigned *cp)
{
	static const char escapes[] = "\"\\/bfnrt", meanings[] = "\"\\/\b\f\n\r\t";
	if (r->at >= r->end)
		return false;
	char escape = *r->at++;
	const char *known = escape ? strchr(escapes, escape) : NULL;
	if (known) {
		*cp = (unsigned char)meanings[known - escapes];
		return true;
	}
	if (escape != 'u' || !read_hex4(r, cp))
		return false;
	/* A high surrogate and its low one are one code point; a lone one is kept as it is (and refused). */
	if (*cp >= 0xd800 && *cp < 0xdc00 && r->end - r->at >= 6 && r->at[0] == '\\' && r->at[1] == 'u') {
		const char *saved = r->at;
		unsigned low;
		r->at += 2;
		if (read_hex4(r, &low) && low >= 0xdc00 && low < 0xe000)
			*cp = 0x10000 + ((*cp - 0xd800) << 10) + (low - 0xdc00);
		else
			r->at = saved;
	}
	return true;
}

bool json_read_string(struct json_reader *r, char *out, size_t len, bool *fits)
{
	size_t used = 0;
	*fits = out != NULL;
	if (!json_take(r, '"'))
		return false;
	while (r->at < r->end) {
		unsigned char c = (unsigned char)*r->at++;
		if (c == '"') {
			if (out && *fits)
				out[used] = 0;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			unsigned cp;
			if (!read_escape(r, &cp))
				return false;
			if (cp == 0 || (cp >= 0xd800 && cp < 0xe000))
				*fits = false;
			if (*fits && !put_utf8(out, len, &used, cp))
				*fits = false;
		} else if (*fits) {
			/* Raw bytes are copied as they are: the file is UTF-8, as JSON requires. */
			if (used + 1 >= len)
				*fits = false;
			else
				out[used++] = (char)c;
		}
	}
	return false;
}

static void skip_digits(struct json_reader *r)
{
	while (r->at < r->end && *r->at >= '0' && *r->at <= '9')
		r->at++;
}

static bool digit_next(const struct json_reader *r)
{
	return r->at < r->end && *r->at >= '0' && *r->at <= '9';
}

static bool skip_number(struct json_reader *r)
{
	const char *start = r->at;
	if (r->at < r->end && *r->at == '-')
		r->at++;
	if (r->at >= r->end)
		return false;
	if (*r->at == '0')
		r->at++;
	else if (*r->at >= '1' && *r->at <= '9')
		skip_digits(r);
	else
		return false;
	if (r->at < r->end && *r->at == '.') {
		r->at++;
		if (!digit_next(r))
			return false;
		skip_digits(r);
	}
	if (r->at < r->end && (*r->at == 'e' || *r->at == 'E')) {
		r->at++;
		if (r->at < r->end && (*r->at == '+' || *r->at == '-'))
			r->at++;
		if (!digit_next(r))
			return false;
		skip_digits(r);
	}
	return r->at > start;
}

static bool skip_literal(struct json_reader *r, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(r->end - r->at) < n || memcmp(r->at, word, n) != 0)
		return false;
	r->at += n;
	return true;
}

bool json_read_object(struct json_reader *r, int depth, json_member_reader on_member, void *ctx)
{
	if (depth > JSON_MAX_DEPTH || !json_take(r, '{'))
		return false;
	if (json_take(r, '}'))
		return true;
	do {
		char key[JSON_MAX_KEY];
		bool key_fits;
		json_skip_space(r);
		if (!json_read_string(r, key, sizeof key, &key_fits) || !json_take(r, ':'))
			return false;
		if (!on_member(r, key, key_fits, depth, ctx))
			return false;
	} while (json_take(r, ','));
	return json_take(r, '}');
}

static bool skip_member(struct json_reader *r, const char *key, bool key_fits, int depth, void *ctx)
{
	(void)key;
	(void)key_fits;
	(void)ctx;
	return json_skip_value(r, depth + 1);
}

bool json_skip_value(struct json_reader *r, int depth)
{
	bool fits;
	if (depth > JSON_MAX_DEPTH)
		return false;
	json_skip_space(r);
	if (r->at >= r->end)
		return false;
	switch (*r->at) {
	case '{':
		return json_read_object(r, depth, skip_member, NULL);
	case '[':
		r->at++;
		if (json_take(r, ']'))
			return true;
		do {
			if (!json_skip_value(r, depth + 1))
				return false;
		} while (json_take(r, ','));
		return json_take(r, ']');
	case '"':
		return json_read_string(r, NULL, 0, &fits);
	case 't':
		return skip_literal(r, "true");
	case 'f':
		return skip_literal(r, "false");
	case 'n':
		return skip_literal(r, "null");
	default:
		return skip_number(r);
	}
}
