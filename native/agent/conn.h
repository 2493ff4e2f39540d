/*
 * A connection: one byte stream to a host client, carrying frames both ways. It knows nothing of what the
 * stream is (a unix socket accepted by listener.c today, a virtio-serial port tomorrow): a transport hands it
 * the fds and may ask to hear of its end.
 *
 * Connections are named by a serial number that is never reused, so that whatever outlives a connection
 * (a deferred response, a relayed stream) can hold a plain number and find out the connection is gone.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

struct conn_handlers {
	/* A whole frame has arrived; the payload may be modified in place. Nonzero: protocol error. */
	int (*frame)(struct conn *c, uint32_t id, uint8_t type, char *payload, size_t len);
	/* Whether the connection may read more input now (false while a stdin it feeds is full). */
	bool (*may_read)(struct conn *c);
	/* The connection is gone. */
	void (*closed)(struct conn *c);
};

void conn_set_handlers(const struct conn_handlers *h);

/* Starts serving a byte stream (rfd and wfd may be the same fd; both are owned from now on). */
struct conn *conn_open(int rfd, int wfd, const char *name);
/* A transport's hook, called when the connection ends (e.g. to serve the next one on a port). */
void conn_on_close(struct conn *c, void (*fn)(void *ctx), void *ctx);
void conn_close(struct conn *c);

uint64_t conn_serial(const struct conn *c);
struct conn *conn_find(uint64_t serial);
void conn_subscribe(struct conn *c);

void conn_send(struct conn *c, uint32_t id, uint8_t type, const void *payload, size_t len);
/* Sends an EVENT to every subscribed connection except the one with serial except (0: none). */
void conn_broadcast_event(const void *payload, size_t len, uint64_t except);
/* True when output is piling up: producers (process output relays) should pause. */
bool conn_congested(const struct conn *c);
/* Processes input already buffered (after may_read turned true again). */
void conn_resume(struct conn *c);

/* At exit: writes out what is queued, waiting at most timeout_ms in all; then closes every connection. */
void conn_flush_all(int timeout_ms);
void conn_close_all(void);
