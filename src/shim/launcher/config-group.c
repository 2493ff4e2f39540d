/* A small strict JSON reader: just enough to find two annotation values in a config.json. */
#include "config-group.h"

#include <stdbool.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_KEY 256

static const char *const GROUP_ANNOTATIONS[] = {"io.kubernetes.cri.sandbox-id", "io.runbox.group"};
#define GROUP_ANNOTATION_COUNT (sizeof GROUP_ANNOTATIONS / sizeof GROUP_ANNOTATIONS[0])

struct reader {
    const char *at;
    const char *end;
};

struct found {
    char value[GROUP_ANNOTATION_COUNT][MAX_KEY];
};

static void skip_space(struct reader *r) {
    while (r->at < r->end && (*r->at == ' ' || *r->at == '\t' || *r->at == '\n' || *r->at == '\r')) r->at++;
}

static bool take(struct reader *r, char c) {
    skip_space(r);
    if (r->at >= r->end || *r->at != c) return false;
    r->at++;
    return true;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(struct reader *r, unsigned *code) {
    if (r->end - r->at < 4) return false;
    *code = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_digit(r->at[i]);
        if (digit < 0) return false;
        *code = *code << 4 | (unsigned)digit;
    }
    r->at += 4;
    return true;
}

/* Appends code point cp as UTF-8; false when out is full (the value is then too long to be a group id). */
static bool put_utf8(char *out, size_t capacity, size_t *length, unsigned cp) {
    char bytes[4];
    size_t n;
    if (cp < 0x80) { bytes[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { bytes[0] = (char)(0xc0 | cp >> 6); bytes[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
    else if (cp < 0x10000) { bytes[0] = (char)(0xe0 | cp >> 12); bytes[1] = (char)(0x80 | (cp >> 6 & 0x3f)); bytes[2] = (char)(0x80 | (cp & 0x3f)); n = 3; }
    else { bytes[0] = (char)(0xf0 | cp >> 18); bytes[1] = (char)(0x80 | (cp >> 12 & 0x3f)); bytes[2] = (char)(0x80 | (cp >> 6 & 0x3f)); bytes[3] = (char)(0x80 | (cp & 0x3f)); n = 4; }
    if (*length + n >= capacity) return false;
    memcpy(out + *length, bytes, n);
    *length += n;
    return true;
}

/*
 * Reads a string; its decoded text goes to out when out is given. *fits is false when it did not fit (or holds a
 * NUL or a lone surrogate, which no group id this reader vouches for may contain).
 */
static bool read_string(struct reader *r, char *out, size_t capacity, bool *fits) {
    size_t length = 0;
    *fits = out != NULL;
    if (!take(r, '"')) return false;
    while (r->at < r->end) {
        unsigned char c = (unsigned char)*r->at++;
        if (c == '"') {
            if (out && *fits) out[length] = '\0';
            return true;
        }
        if (c < 0x20) return false;
        unsigned cp = c;
        if (c == '\\') {
            if (r->at >= r->end) return false;
            char escape = *r->at++;
            switch (escape) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (!read_hex4(r, &cp)) return false;
                if (cp >= 0xd800 && cp < 0xdc00 && r->end - r->at >= 6 && r->at[0] == '\\' && r->at[1] == 'u') {
                    const char *saved = r->at;
                    unsigned low;
                    r->at += 2;
                    if (read_hex4(r, &low) && low >= 0xdc00 && low < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    else r->at = saved;
                }
                if (cp == 0 || (cp >= 0xd800 && cp < 0xe000)) *fits = false;
                break;
            default:
                return false;
            }
            if (*fits && !put_utf8(out, capacity, &length, cp)) *fits = false;
        } else if (*fits) {
            /* Raw bytes are copied as they are: the file is UTF-8, as JSON requires. */
            if (length + 1 >= capacity) *fits = false;
            else out[length++] = (char)c;
        }
    }
    return false;
}

static bool skip_value(struct reader *r, int depth);

static bool skip_number(struct reader *r) {
    const char *start = r->at;
    if (r->at < r->end && *r->at == '-') r->at++;
    if (r->at >= r->end) return false;
    if (*r->at == '0') r->at++;
    else if (*r->at >= '1' && *r->at <= '9') while (r->at < r->end && *r->at >= '0' && *r->at <= '9') r->at++;
    else return false;
    if (r->at < r->end && *r->at == '.') {
        r->at++;
        if (r->at >= r->end || *r->at < '0' || *r->at > '9') return false;
        while (r->at < r->end && *r->at >= '0' && *r->at <= '9') r->at++;
    }
    if (r->at < r->end && (*r->at == 'e' || *r->at == 'E')) {
        r->at++;
        if (r->at < r->end && (*r->at == '+' || *r->at == '-')) r->at++;
        if (r->at >= r->end || *r->at < '0' || *r->at > '9') return false;
        while (r->at < r->end && *r->at >= '0' && *r->at <= '9') r->at++;
    }
    return r->at > start;
}

static bool skip_literal(struct reader *r, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(r->end - r->at) < n || memcmp(r->at, word, n) != 0) return false;
    r->at += n;
    return true;
}

/* Reads an object; on_member is called for each key with the reader at its value, and must consume the value. */
typedef bool (*member_reader)(struct reader *r, const char *key, bool key_fits, int depth, struct found *found);

static bool read_object(struct reader *r, int depth, member_reader on_member, struct found *found) {
    if (depth > MAX_DEPTH || !take(r, '{')) return false;
    if (take(r, '}')) return true;
    do {
        char key[MAX_KEY];
        bool key_fits;
        skip_space(r);
        if (!read_string(r, key, sizeof key, &key_fits) || !take(r, ':')) return false;
        if (!on_member(r, key, key_fits, depth, found)) return false;
    } while (take(r, ','));
    return take(r, '}');
}

static bool skip_member(struct reader *r, const char *key, bool key_fits, int depth, struct found *found) {
    (void)key; (void)key_fits; (void)found;
    return skip_value(r, depth + 1);
}

static bool skip_value(struct reader *r, int depth) {
    bool fits;
    if (depth > MAX_DEPTH) return false;
    skip_space(r);
    if (r->at >= r->end) return false;
    switch (*r->at) {
    case '{':
        return read_object(r, depth, skip_member, NULL);
    case '[':
        r->at++;
        if (take(r, ']')) return true;
        do {
            if (!skip_value(r, depth + 1)) return false;
        } while (take(r, ','));
        return take(r, ']');
    case '"':
        return read_string(r, NULL, 0, &fits);
    case 't':
        return skip_literal(r, "true");
    case 'f':
        return skip_literal(r, "false");
    case 'n':
        return skip_literal(r, "null");
    default:
        return skip_number(r);
    }
}

static bool annotation_member(struct reader *r, const char *key, bool key_fits, int depth, struct found *found) {
    skip_space(r);
    for (size_t i = 0; key_fits && i < GROUP_ANNOTATION_COUNT; i++) {
        if (strcmp(key, GROUP_ANNOTATIONS[i]) != 0) continue;
        found->value[i][0] = '\0';
        if (r->at < r->end && *r->at == '"') {
            bool fits;
            if (!read_string(r, found->value[i], sizeof found->value[i], &fits)) return false;
            /* A value this reader cannot hold is not guessed at. */
            if (!fits) return false;
            return true;
        }
    }
    return skip_value(r, depth + 1);
}

static bool config_member(struct reader *r, const char *key, bool key_fits, int depth, struct found *found) {
    skip_space(r);
    if (key_fits && strcmp(key, "annotations") == 0) {
        /* The last "annotations" counts, as with JSON.parse; one that is not an object holds no group. */
        memset(found, 0, sizeof *found);
        if (r->at < r->end && *r->at == '{') return read_object(r, depth + 1, annotation_member, found);
    }
    return skip_value(r, depth + 1);
}

enum group_result config_group(const char *json, size_t length, char *group, size_t capacity) {
    struct reader r = {json, json + length};
    struct found found;
    memset(&found, 0, sizeof found);
    /* A UTF-8 byte order mark is not JSON: JSON.parse refuses it too. */
    if (!read_object(&r, 0, config_member, &found)) return GROUP_UNSURE;
    skip_space(&r);
    if (r.at != r.end) return GROUP_UNSURE;
    for (size_t i = 0; i < GROUP_ANNOTATION_COUNT; i++) {
        if (found.value[i][0] == '\0') continue;
        if (strlen(found.value[i]) >= capacity) return GROUP_UNSURE;
        strcpy(group, found.value[i]);
        return GROUP_FOUND;
    }
    return GROUP_NONE;
}
