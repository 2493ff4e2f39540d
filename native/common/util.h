/* Small helpers shared by all of runbox's C (the agent and the launchers): memory, growable buffers, numbers, fds. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* A growable byte buffer; data[len] is always NUL once anything was added. */
struct buf {
	char *data;
	size_t len, cap;
};

void buf_reserve(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vaddf(struct buf *b, const char *fmt, va_list ap);
void buf_drop(struct buf *b, size_t n); /* drops n bytes from the front */
void buf_free(struct buf *b);

bool parse_u64(const char *s, uint64_t *out); /* decimal */
bool parse_i64(const char *s, int64_t *out);
bool parse_hex(const char *s, uint64_t *out); /* with or without 0x */
bool parse_oct(const char *s, uint64_t *out);

uint64_t now_unix_ns(void);
uint64_t now_mono_ms(void);

/* strerror as Go prints an errno: "no such file or directory" (a few rotating static buffers). */
const char *errtext(int err);

int write_all(int fd, const void *p, size_t n);
/* One sendmsg of data (len > 0) with fd attached (SCM_RIGHTS): the bytes sent (maybe fewer than len), or -1. */
ssize_t send_fd(int sock, const void *data, size_t len, int fd);
#define SEND_FDS_MAX 8
/* send_fd with nfds (1 to SEND_FDS_MAX) fds attached, in order. */
ssize_t send_fds(int sock, const void *data, size_t len, const int *fds, size_t nfds);
void set_nonblock(int fd);
/* Unblocks every signal and restores default dispositions: a child's, before it execs, as libuv's spawn leaves them. */
void reset_signals(void);
/* Closes every fd except those in keep (in any order); used by children right after fork. */
void close_fds_except(const int *keep, int n);
int write_file(const char *path, const char *text);
/* Reads up to len-1 bytes of a (small) file into out, NUL-terminated; -1 with errno. */
int read_file(const char *path, char *out, size_t len);
int mkdir_all(const char *path, mode_t mode);
/* DIR/NAME into out; false when it does not fit. */
bool join_path(char *out, size_t len, const char *dir, const char *name);
/* Splits s in place at each sep; returns the number of fields (at most max). */
size_t split_fields(char *s, char sep, char **fields, size_t max);
