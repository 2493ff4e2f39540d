#define _GNU_SOURCE
#include "cli-log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "utf8-text.h"
#include "util.h"

/* What String.prototype.trim removes. */
static bool js_whitespace(unsigned cp)
{
	return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	       cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000 || cp == 0xfeff;
}

/* errorMessage in run-reported.ts: every line trimmed, the empty ones dropped, the rest joined by spaces. */
static void add_one_line(struct buf *out, const char *text)
{
	bool any = false;
	for (const char *line = text; line;) {
		const char *newline = strchr(line, '\n');
		const char *line_end = newline ? newline : line + strlen(line);
		const char *first = NULL, *last_end = NULL;
		for (const char *at = line; at < line_end;) {
			size_t size;
			unsigned cp = utf8_next(at, &size);
			if (!js_whitespace(cp)) {
				if (!first)
					first = at;
				last_end = at + size;
			}
			at += size;
		}
		if (first) {
			if (any)
				buf_add(out, " ", 1);
			buf_add(out, first, (size_t)(last_end - first));
			any = true;
		}
		line = newline ? newline + 1 : NULL;
	}
}

/* JSON.stringify of a well-formed UTF-8 string. */
static void add_quoted(struct buf *out, const char *text)
{
	/* The characters with a short escape, and their letters. */
	static const char escaped[] = "\"\\\b\f\n\r\t", letters[] = "\"\\bfnrt";
	buf_add(out, "\"", 1);
	for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
		const char *short_escape = strchr(escaped, *s);
		if (short_escape)
			buf_addf(out, "\\%c", letters[short_escape - escaped]);
		else if (*s < 0x20)
			buf_addf(out, "\\u%04x", *s);
		else
			buf_add(out, s, 1);
	}
	buf_add(out, "\"", 1);
}

/* new Date().toISOString(). */
static void iso_time(char *out, size_t len)
{
	struct timespec now;
	struct tm utc;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &utc);
	size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &utc);
	snprintf(out + n, len - n, ".%03ldZ", now.tv_nsec / 1000000);
}

void cli_report_error(const struct cli_options *options, const char *message)
{
	char *clean = utf8_sanitized(message, strlen(message));
	struct buf line = { 0 }, msg = { 0 }, text = { 0 }, json = { 0 };
	add_one_line(&line, clean);
	add_quoted(&msg, line.data ? line.data : "");
	char time[64];
	iso_time(time, sizeof time);
	buf_addf(&text, "time=\"%s\" level=error msg=%s\n", time, msg.data);
	if (options->log) {
		if (options->json)
			buf_addf(&json, "{\"level\":\"error\",\"msg\":%s,\"time\":\"%s\"}\n", msg.data, time);
		/* The log is best effort, as appendFileSync's failure is to the Node CLI. */
		int fd = open(options->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
		if (fd >= 0) {
			const struct buf *entry = options->json ? &json : &text;
			(void)write_all(fd, entry->data, entry->len);
			close(fd);
		}
	}
	(void)write_all(2, text.data, text.len);
	buf_free(&json);
	buf_free(&text);
	buf_free(&msg);
	buf_free(&line);
	free(clean);
}
