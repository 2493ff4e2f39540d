/* The agent's log: one timestamped line per message on fd 2 (the --log file, or /dev/null). */
#pragma once

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
