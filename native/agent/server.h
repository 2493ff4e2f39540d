/* Request dispatch: decodes REQUEST frames, runs the op, answers now or later. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "request.h"

void server_init(void);
/* Set by `shutdown` and SIGTERM: the main loop then ends every container and exits. */
extern bool server_stopping;
extern struct reply_to server_shutdown_reply;

