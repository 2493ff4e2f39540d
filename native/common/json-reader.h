/*
 * A small strict JSON reader (RFC 8259, as JSON.parse takes it) for the launchers' fast paths: it walks a text
 * and hands each object member to a callback, decoding only the strings asked for. Whatever it does not vouch
 * for, it refuses, and the caller leaves the decision to the TypeScript side.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define JSON_MAX_DEPTH 64
#define JSON_MAX_KEY 256

struct json_reader {
	const char *at;
	const char *end;
};

/* The raw JSON text of one value; start NULL when there is none. */
struct json_span {
	const char *start;
	size_t len;
};

void json_skip_space(struct json_reader *r);
/* Skips space, then takes c if it is next. */
bool json_take(struct json_reader *r, char c);
/*
 * Reads a string; its decoded text goes to out when out is given. *fits is false when it did not fit (or holds a
 * NUL or a lone surrogate, which no value this reader vouches for may contain).
 */
bool json_read_string(struct json_reader *r, char *out, size_t len, bool *fits);
bool json_skip_value(struct json_reader *r, int depth);

/* Called for each member with the reader at its value (space skipped), which it must consume. */
typedef bool (*json_member_reader)(struct json_reader *r, const char *key, bool key_fits, int depth, void *ctx);
bool json_read_object(struct json_reader *r, int depth, json_member_reader on_member, void *ctx);
