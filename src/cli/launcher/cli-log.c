/* runc-style error lines, as the Node CLI writes them (cli-log.h). */
#include "cli-log.h"
#include "utf8-text.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What String.prototype.trim removes. */
static bool js_whitespace(unsigned cp) {
    return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000 || cp == 0xfeff;
}

/* errorMessage in run-reported.ts: every line trimmed, the empty ones dropped, the rest joined by spaces. */
static char *one_line(const char *text) {
    char *out = malloc(strlen(text) + 1);
    if (!out) return NULL;
    size_t used = 0;
    for (const char *line = text; line;) {
        const char *newline = strchr(line, '\n');
        const char *line_end = newline ? newline : line + strlen(line);
        const char *first = NULL, *last_end = NULL;
        for (const char *at = line; at < line_end;) {
            size_t size;
            unsigned cp = utf8_next(at, &size);
            if (!js_whitespace(cp)) {
                if (!first) first = at;
                last_end = at + size;
            }
            at += size;
        }
        if (first) {
            if (used) out[used++] = ' ';
            memcpy(out + used, first, (size_t)(last_end - first));
            used += (size_t)(last_end - first);
        }
        line = newline ? newline + 1 : NULL;
    }
    out[used] = '\0';
    return out;
}

/* JSON.stringify of a well-formed UTF-8 string. */
static char *quoted(const char *text) {
    char *out = malloc(strlen(text) * 6 + 3);
    if (!out) return NULL;
    char *at = out;
    *at++ = '"';
    /* The characters with a short escape, and their letters. */
    static const char escaped[] = "\"\\\b\f\n\r\t", letters[] = "\"\\bfnrt";
    for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
        const char *short_escape = strchr(escaped, *s);
        if (short_escape) {
            *at++ = '\\';
            *at++ = letters[short_escape - escaped];
        } else if (*s < 0x20) {
            at += sprintf(at, "\\u%04x", *s);
        } else {
            *at++ = (char)*s;
        }
    }
    *at++ = '"';
    *at = '\0';
    return out;
}

/* new Date().toISOString(). */
static void iso_time(char *buf, size_t capacity) {
    struct timespec now;
    struct tm utc;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);
    size_t n = strftime(buf, capacity, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(buf + n, capacity - n, ".%03ldZ", now.tv_nsec / 1000000);
}

static void write_all(int fd, const char *text) {
    for (size_t left = strlen(text); left;) {
        ssize_t n = write(fd, text, left);
        if (n <= 0) return;
        text += n;
        left -= (size_t)n;
    }
}

void cli_report_error(const struct cli_options *options, const char *message) {
    char *clean = utf8_sanitized(message, strlen(message));
    char *line = clean ? one_line(clean) : NULL;
    char *msg = line ? quoted(line) : NULL;
    char time[64];
    iso_time(time, sizeof time);
    char *text = NULL, *json = NULL;
    if (msg && asprintf(&text, "time=\"%s\" level=error msg=%s\n", time, msg) < 0) text = NULL;
    if (text && options->log) {
        if (options->json && asprintf(&json, "{\"level\":\"error\",\"msg\":%s,\"time\":\"%s\"}\n", msg, time) < 0) json = NULL;
        /* The log is best effort, as appendFileSync's failure is to the Node CLI. */
        int fd = open(options->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
        if (fd >= 0) {
            write_all(fd, options->json && json ? json : text);
            close(fd);
        }
    }
    write_all(2, text ? text : "level=error msg=\"out of memory\"\n");
    free(json);
    free(text);
    free(msg);
    free(line);
    free(clean);
}
