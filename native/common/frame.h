/*
 * The agent protocol's wire format (agent/PROTOCOL.md): 10-byte frame headers and NUL-terminated key=value
 * records, as the agent and the launchers speak it (the limits and types are facts.h's, shared with the TypeScript).
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "facts.h"
#include "util.h"

#define UNIT_SEP (UNIT_SEPARATOR[0])

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
