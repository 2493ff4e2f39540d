/*
 * The single-threaded event loop: a set of watched fds, polled together. Each watch says what it wants
 * before every poll (so back-pressure is a matter of wanting nothing) and is called back when ready.
 */
#pragma once
#include <poll.h>

struct watch;

typedef short (*want_fn)(void *ctx);
typedef void (*ready_fn)(void *ctx, short revents);

/* want may be NULL: always POLLIN. */
struct watch *loop_watch(int fd, want_fn want, ready_fn ready, void *ctx);
/* Stops watching; safe from inside a callback and with NULL. */
void loop_unwatch(struct watch *w);
/* Calls fn(p) once the current round of callbacks is over (for objects a callback may still hold). */
void loop_release_later(void (*fn)(void *), void *p);
/* One poll round: waits up to timeout_ms (-1: forever) and runs the callbacks of the ready fds. */
void loop_run_once(int timeout_ms);
