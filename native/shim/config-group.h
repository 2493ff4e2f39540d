/* The group a container belongs to, from the annotations of its config.json (src/shim/shim-socket.ts's groupId). */
#pragma once
#include <stddef.h>

enum group_result { GROUP_NONE, GROUP_FOUND, GROUP_UNSURE };

/*
 * The group a container belongs to, from the annotations in the JSON text of its config.json: the first of
 * GROUP_ANNOTATIONS (facts.h) with a non-empty string (the last of duplicate keys counts, as with JSON.parse).
 * GROUP_NONE when none is there, GROUP_UNSURE when the text is not JSON this parser vouches for (the caller then
 * leaves the decision to the shim's TypeScript).
 */
enum group_result config_group(const char *json, size_t len, char *group, size_t group_len);
