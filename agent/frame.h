/* The wire format (PROTOCOL.md): 10-byte frame headers and NUL-terminated key=value records. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define FRAME_HEADER 10
#define FRAME_MAX_PAYLOAD 4194304u
#define UNIT_SEP '\x1f'

enum frame_type {
	FRAME_REQUEST = 1,
	FRAME_RESPONSE = 2,
	FRAME_EVENT = 3,
	FRAME_STDIN = 4,
	FRAME_STDOUT = 5,
	FRAME_STDERR = 6,
};

struct frame_header {
	uint32_t len;
	uint32_t id;
	uint8_t type;
	uint8_t flags;
};

void frame_header_decode(const void *p, struct frame_header *h);
void frame_header_encode(void *p, uint32_t len, uint32_t id, uint8_t type);

struct record {
	const char *key;
	char *value;
};

struct records {
	struct record *v;
	size_t n;
};

/* Parses a payload in place (each '=' after a key becomes a NUL). -1 if it is malformed. */
int records_parse(char *payload, size_t len, struct records *out);
void records_free(struct records *r);
/* The first value of key, or NULL. */
const char *records_get(const struct records *r, const char *key);

void record_add(struct buf *b, const char *key, const char *value);
void record_addf(struct buf *b, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
