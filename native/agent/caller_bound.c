#define _GNU_SOURCE
#include "caller_bound.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

int caller_bound_init(int fd)
{
	/* For a socketpair, the process that made it: the caller (the launcher that became the CLI, or the driver). */
	struct ucred peer;
	socklen_t len = sizeof peer;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0)
		return 0; /* not a socket: nobody to be bound to */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		return 0;
	/* Set after the fact: a caller that died before it would never send the signal. */
	return getppid() == peer.pid ? 0 : -1;
}

void op_recorded(struct request *r)
{
	if (prctl(PR_SET_PDEATHSIG, 0) < 0)
		log_msg("cannot stop dying with the caller: %s", "prctl failed");
	reply_ok(r->to, NULL);
}
