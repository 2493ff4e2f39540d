#define _GNU_SOURCE
#include "config-group.h"

#include <stdbool.h>
#include <string.h>

#include "facts.h"
#include "json-reader.h"

static const char *const group_annotations[] = GROUP_ANNOTATIONS;

struct found {
	char value[GROUP_ANNOTATIONS_COUNT][JSON_MAX_KEY];
};

static bool annotation_member(struct json_reader *r, const char *key, bool key_fits, int depth, void *ctx)
{
	struct found *found = ctx;
	json_skip_space(r);
	for (size_t i = 0; key_fits && i < GROUP_ANNOTATIONS_COUNT; i++) {
		if (strcmp(key, group_annotations[i]) != 0)
			continue;
		found->value[i][0] = 0;
		if (r->at < r->end && *r->at == '"') {
			bool fits;
			/* A value this reader cannot hold is not guessed at. */
			return json_read_string(r, found->value[i], sizeof found->value[i], &fits) && fits;
		}
	}
	return json_skip_value(r, depth + 1);
}

static bool config_member(struct json_reader *r, const char *key, bool key_fits, int depth, void *ctx)
{
	struct found *found = ctx;
	json_skip_space(r);
	if (key_fits && !strcmp(key, "annotations")) {
		/* The last "annotations" counts, as with JSON.parse; one that is not an object holds no group. */
		memset(found, 0, sizeof *found);
		if (r->at < r->end && *r->at == '{')
			return json_read_object(r, depth + 1, annotation_member, found);
	}
	return json_skip_value(r, depth + 1);
}

enum group_result config_group(const char *json, size_t len, char *group, size_t group_len)
{
	struct json_reader r = { json, json + len };
	struct found found;
	memset(&found, 0, sizeof found);
	/* A UTF-8 byte order mark is not JSON: JSON.parse refuses it too. */
	if (!json_read_object(&r, 0, config_member, &found))
		return GROUP_UNSURE;
	json_skip_space(&r);
	if (r.at != r.end)
		return GROUP_UNSURE;
	for (size_t i = 0; i < GROUP_ANNOTATIONS_COUNT; i++) {
		if (!found.value[i][0])
			continue;
		if (strlen(found.value[i]) >= group_len)
			return GROUP_UNSURE;
		strcpy(group, found.value[i]);
		return GROUP_FOUND;
	}
	return GROUP_NONE;
}
