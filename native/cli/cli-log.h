/* runc-style error lines, as the Node CLI writes them (src/cli/log.ts, run-reported.ts). */
#pragma once
#include <stdbool.h>

/* runc's global flags that matter to `start` (src/cli/global-options.ts). */
struct cli_options {
	const char *root; /* NULL: the default root */
	const char *log;  /* NULL: stderr only */
	bool json;	  /* --log-format json */
};

/*
 * Reports an error as the Node CLI does: one line, logfmt on stderr, and in --log as well (a JSON line with
 * --log-format json). message may span lines and hold any bytes.
 */
void cli_report_error(const struct cli_options *options, const char *message);
