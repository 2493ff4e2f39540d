#ifndef RUNBOX_SHIM_CONFIG_GROUP_H
#define RUNBOX_SHIM_CONFIG_GROUP_H
#include <stddef.h>

enum group_result { GROUP_NONE, GROUP_FOUND, GROUP_UNSURE };

/*
 * The group a container belongs to, from the annotations in the JSON text of its config.json:
 * io.kubernetes.cri.sandbox-id, else io.runbox.group (non-empty strings; the last of duplicate keys counts, as
 * with JSON.parse). GROUP_NONE when neither is there, GROUP_UNSURE when the text is not JSON this parser vouches
 * for (the caller then leaves the decision to the shim's TypeScript).
 */
enum group_result config_group(const char *json, size_t length, char *group, size_t capacity);

#endif
