#define _GNU_SOURCE
#include "frame.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void frame_header_decode(const void *p, struct frame_header *h)
{
	const unsigned char *b = p;
	h->len = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	h->id = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7];
	h->type = b[8];
	h->flags = b[9];
}

void frame_header_encode(void *p, uint32_t len, uint32_t id, uint8_t type)
{
	unsigned char *b = p;
	b[0] = (unsigned char)(len >> 24);
	b[1] = (unsigned char)(len >> 16);
	b[2] = (unsigned char)(len >> 8);
	b[3] = (unsigned char)len;
	b[4] = (unsigned char)(id >> 24);
	b[5] = (unsigned char)(id >> 16);
	b[6] = (unsigned char)(id >> 8);
	b[7] = (unsigned char)id;
	b[8] = type;
	b[9] = 0;
}

int records_parse(char *payload, size_t len, struct records *out)
{
	out->v = NULL;
	out->n = 0;
	if (len == 0)
		return 0;
	if (payload[len - 1] != 0)
		return -1;
	size_t count = 0;
	for (size_t i = 0; i < len; i++)
		count += payload[i] == 0;
	out->v = xmalloc(count * sizeof *out->v);
	for (char *p = payload, *end = payload + len; p < end; p += strlen(p) + 1) {
		char *k = p;
		while ((*k >= 'a' && *k <= 'z') || *k == '_') /* keys are [a-z_]+ */
			k++;
		if (k == p || *k != '=') {
			records_free(out);
			return -1;
		}
		*k = 0;
		out->v[out->n++] = (struct record){ p, k + 1 };
		p = k + 1; /* continue from the value, which ends at the record's NUL */
	}
	return 0;
}

void records_free(struct records *r)
{
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

const char *records_get(const struct records *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].key, key))
			return r->v[i].value;
	return NULL;
}

void record_add(struct buf *b, const char *key, const char *value)
{
	buf_add(b, key, strlen(key));
	buf_add(b, "=", 1);
	buf_add(b, value, strlen(value));
	buf_add(b, "", 1);
}

void record_addf(struct buf *b, const char *key, const char *fmt, ...)
{
	buf_add(b, key, strlen(key));
	buf_add(b, "=", 1);
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(b, fmt, ap);
	va_end(ap);
	buf_add(b, "", 1);
}
