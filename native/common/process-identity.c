#define _GNU_SOURCE
#include "process-identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "small-file.h"

bool process_start_time(pid_t pid, char *out, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	char *stat = read_small_file(path, 4096, NULL);
	if (!stat)
		return false;
	/* The command name (field 2) may hold spaces and parentheses: the fields after it start after the last ')'. */
	char *close_paren = strrchr(stat, ')');
	bool found = false;
	if (close_paren && close_paren[1] == ' ') {
		char *fields = close_paren + 2, *field = fields;
		bool live_state = fields[0] != 'Z' && fields[0] != 'X';
		/* The state is field 3; the start time is field 22. */
		for (int n = 0; field && n < 19; n++) {
			field = strchr(field, ' ');
			if (field)
				field++;
		}
		if (field && live_state) {
			size_t field_len = strcspn(field, " \n");
			if (field_len > 0 && field_len < len) {
				memcpy(out, field, field_len);
				out[field_len] = 0;
				found = true;
			}
		}
	}
	free(stat);
	return found;
}

bool process_alive(pid_t pid, const char *start_time)
{
	char now[32];
	return pid > 0 && process_start_time(pid, now, sizeof now) && !strcmp(now, start_time);
}
