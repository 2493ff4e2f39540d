#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"

struct watch {
	int fd;
	want_fn want;
	ready_fn ready;
	void *ctx;
	bool dead;
};

struct release {
	void (*fn)(void *);
	void *p;
};

static struct watch **watches;
static size_t nwatches, capwatches;
static struct release *releases;
static size_t nreleases, capreleases;

struct watch *loop_watch(int fd, want_fn want, ready_fn ready, void *ctx)
{
	struct watch *w = xcalloc(1, sizeof *w);
	*w = (struct watch){ .fd = fd, .want = want, .ready = ready, .ctx = ctx };
	if (nwatches == capwatches) {
		capwatches = capwatches ? capwatches * 2 : 16;
		watches = xrealloc(watches, capwatches * sizeof *watches);
	}
	watches[nwatches++] = w;
	return w;
}

void loop_unwatch(struct watch *w)
{
	if (w)
		w->dead = true;
}

void loop_release_later(void (*fn)(void *), void *p)
{
	if (nreleases == capreleases) {
		capreleases = capreleases ? capreleases * 2 : 8;
		releases = xrealloc(releases, capreleases * sizeof *releases);
	}
	releases[nreleases++] = (struct release){ fn, p };
}

void loop_run_once(int timeout_ms)
{
	static struct pollfd *pfds;
	static struct watch **polled;
	static size_t cap;
	if (cap < nwatches) {
		cap = nwatches * 2;
		pfds = xrealloc(pfds, cap * sizeof *pfds);
		polled = xrealloc(polled, cap * sizeof *polled);
	}
	size_t n = 0;
	for (size_t i = 0; i < nwatches; i++) {
		struct watch *w = watches[i];
		if (w->dead)
			continue;
		short events = w->want ? w->want(w->ctx) : POLLIN;
		if (!events)
			continue;
		pfds[n] = (struct pollfd){ .fd = w->fd, .events = events };
		polled[n++] = w;
	}
	int rc = poll(pfds, n, timeout_ms);
	if (rc < 0 && errno != EINTR)
		log_msg("poll: %s", errtext(errno));
	for (size_t i = 0; rc > 0 && i < n; i++) {
		/* A callback may have ended a watch polled in this same round. */
		if (pfds[i].revents && !polled[i]->dead)
			polled[i]->ready(polled[i]->ctx, pfds[i].revents);
	}
	size_t kept = 0;
	for (size_t i = 0; i < nwatches; i++) {
		if (watches[i]->dead)
			free(watches[i]);
		else
			watches[kept++] = watches[i];
	}
	nwatches = kept;
	for (size_t i = 0; i < nreleases; i++)
		releases[i].fn(releases[i].p);
	nreleases = 0;
}
