/* The group of a container, from the annotations of its config.json (config-group.h). */
#include "config-group.h"
#include "json-reader.h"

#include <string.h>

static const char *const GROUP_ANNOTATIONS[] = {"io.kubernetes.cri.sandbox-id", "io.runbox.group"};
#define GROUP_ANNOTATION_COUNT (sizeof GROUP_ANNOTATIONS / sizeof GROUP_ANNOTATIONS[0])

struct found {
    char value[GROUP_ANNOTATION_COUNT][JSON_MAX_KEY];
};

static bool annotation_member(struct json_reader *r, const char *key, bool key_fits, int depth, void *context) {
    struct found *found = context;
    json_skip_space(r);
    for (size_t i = 0; key_fits && i < GROUP_ANNOTATION_COUNT; i++) {
        if (strcmp(key, GROUP_ANNOTATIONS[i]) != 0) continue;
        found->value[i][0] = '\0';
        if (r->at < r->end && *r->at == '"') {
            bool fits;
            if (!json_read_string(r, found->value[i], sizeof found->value[i], &fits)) return false;
            /* A value this reader cannot hold is not guessed at. */
            if (!fits) return false;
            return true;
        }
    }
    return json_skip_value(r, depth + 1);
}

static bool config_member(struct json_reader *r, const char *key, bool key_fits, int depth, void *context) {
    struct found *found = context;
    json_skip_space(r);
    if (key_fits && strcmp(key, "annotations") == 0) {
        /* The last "annotations" counts, as with JSON.parse; one that is not an object holds no group. */
        memset(found, 0, sizeof *found);
        if (r->at < r->end && *r->at == '{') return json_read_object(r, depth + 1, annotation_member, found);
    }
    return json_skip_value(r, depth + 1);
}

enum group_result config_group(const char *json, size_t length, char *group, size_t capacity) {
    struct json_reader r = {json, json + length};
    struct found found;
    memset(&found, 0, sizeof found);
    /* A UTF-8 byte order mark is not JSON: JSON.parse refuses it too. */
    if (!json_read_object(&r, 0, config_member, &found)) return GROUP_UNSURE;
    json_skip_space(&r);
    if (r.at != r.end) return GROUP_UNSURE;
    for (size_t i = 0; i < GROUP_ANNOTATION_COUNT; i++) {
        if (found.value[i][0] == '\0') continue;
        if (strlen(found.value[i]) >= capacity) return GROUP_UNSURE;
        strcpy(group, found.value[i]);
        return GROUP_FOUND;
    }
    return GROUP_NONE;
}
