/* Request dispatch: decodes REQUEST frames, runs the op, answers now or later. */
#pragma once
#include <stdbool.h>
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

void server_init(void);
/* Set by `shutdown` and SIGTERM: the main loop then ends every container and exits. */
extern bool server_stopping;
extern struct reply_to server_shutdown_reply;

/* Answers ok=1 followed by records (NULL: none). Dropped if the connection is gone. */
void reply_ok(struct reply_to to, const struct buf *records);
void reply_error(struct reply_to to, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
