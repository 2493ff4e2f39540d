/*
 * The agent's connections in a microVM: virtio-serial ports named agent.0, agent.1… (one host client each at
 * a time). A port is a connection for as long as a host client is attached to it; when the client goes, the
 * port is closed (which drops whatever it left unread) and reopened for the next one. A port with no host
 * reports POLLHUP without end, so it is not polled then: the kernel's SIGIO says when a host arrives.
 *
 * Every new session starts with an EVENT `event=ready` from the agent: the host ignores whatever precedes it.
 */
#pragma once
#include <stdbool.h>

/* Opens every agent.N port there is; returns how many (0: none, which is an error for the caller). */
int ports_open(void);
/* After SIGIO: serves the ports whose host has (re)connected, and reopens those that could not be reopened. */
void ports_poll(void);
/* Whether a port waits to be reopened (the main loop then calls ports_poll() again soon). */
bool ports_reopen_pending(void);
/* Whether a host client is attached to any port now. */
bool ports_any_attached(void);
/* At exit: stops reopening ports as their connections close. */
void ports_close(void);
