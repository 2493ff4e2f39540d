#define _GNU_SOURCE
#include "request.h"

#include <stdarg.h>

void reply_ok(struct reply_to to, const struct buf *records)
{
	if (!to.id)
		return;
	struct conn *c = conn_find(to.conn);
	if (!c)
		return;
	struct buf b = { 0 };
	record_add(&b, "ok", "1");
	if (records && records->len)
		buf_add(&b, records->data, records->len);
	conn_send(c, to.id, FRAME_RESPONSE, b.data, b.len);
	buf_free(&b);
}

void reply_error(struct reply_to to, int err, const char *fmt, ...)
{
	if (!to.id)
		return;
	struct conn *c = conn_find(to.conn);
	if (!c)
		return;
	struct buf msg = { 0 }, b = { 0 };
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&msg, fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < msg.len; i++) /* one line, and never a NUL inside a record */
		if (msg.data[i] == '\n' || msg.data[i] == '\r' || msg.data[i] == 0)
			msg.data[i] = ' ';
	record_add(&b, "error", msg.data ? msg.data : "");
	record_addf(&b, "errno", "%d", err);
	conn_send(c, to.id, FRAME_RESPONSE, b.data, b.len);
	buf_free(&msg);
	buf_free(&b);
}
