/* A request decoded from a REQUEST frame, and its answer, given now or later: where the response goes and what it
 * says. */
#pragma once
#include <stdint.h>

#include "conn.h"
#include "frame.h"

/* Where a response goes: a connection serial and a request id (id 0: nobody is waiting). */
struct reply_to {
	uint64_t conn;
	uint32_t id;
};

struct request {
	struct conn *conn;
	struct reply_to to;
	struct records rec;
	const char *op;
};

/* Answers ok=1 followed by records (NULL: none). Dropped if the connection is gone. */
void reply_ok(struct reply_to to, const struct buf *records);
void reply_error(struct reply_to to, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
