#define _GNU_SOURCE
#include "pool-config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json-reader.h"
#include "small-file.h"
#include "util.h"

#define OPTIONS_TYPE "runtimeoptions.v1.Options"
#define CONFIG_LIMIT (1 << 20)

struct field {
	const unsigned char *data;
	size_t len;
};

/* A varint at *p (advanced); false past end. */
static bool varint(const unsigned char **p, const unsigned char *end, uint64_t *value)
{
	*value = 0;
	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		unsigned char byte = *(*p)++;
		*value |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80))
			return true;
	}
	return false;
}

/* The last length-delimited field number in a protobuf message; false when the message is malformed. */
static bool message_field(const unsigned char *p, size_t len, uint64_t number, struct field *out)
{
	const unsigned char *end = p + len;
	out->data = NULL;
	out->len = 0;
	while (p < end) {
		uint64_t key, value;
		if (!varint(&p, end, &key))
			return false;
		switch (key & 7) {
		case 0:
			if (!varint(&p, end, &value))
				return false;
			break;
		case 1:
		case 5: {
			size_t size = (key & 7) == 1 ? 8 : 4;
			if ((size_t)(end - p) < size)
				return false;
			p += size;
			break;
		}
		case 2:
			if (!varint(&p, end, &value) || value > (uint64_t)(end - p))
				return false;
			if (key >> 3 == number) {
				out->data = p;
				out->len = (size_t)value;
			}
			p += value;
			break;
		default:
			return false;
		}
	}
	return true;
}

/* Any.type_url names its type after the last '/' (or is the bare name, as containerd writes it). */
static bool is_options_type(const struct field *type_url)
{
	size_t name_len = strlen(OPTIONS_TYPE);
	if (type_url->len < name_len || memcmp(type_url->data + type_url->len - name_len, OPTIONS_TYPE, name_len) != 0)
		return false;
	return type_url->len == name_len || type_url->data[type_url->len - name_len - 1] == '/';
}

struct settings {
	long long size, idle, vms;
	bool has_size, has_idle, has_vms;
};

static bool read_integer(struct json_reader *r, int depth, long long *out, bool *has)
{
	const char *start = r->at;
	if (!json_skip_value(r, depth + 1))
		return false;
	char text[24];
	size_t len = (size_t)(r->at - start);
	uint64_t value;
	if (len && len < sizeof text) {
		memcpy(text, start, len);
		text[len] = 0;
		if (parse_u64(text, &value) && value <= INT32_MAX) {
			*out = (long long)value;
			*has = true;
		}
	}
	return true;
}

static bool pool_member(struct json_reader *r, const char *key, bool key_fits, int depth, void *ctx)
{
	struct settings *settings = ctx;
	json_skip_space(r);
	if (key_fits && !strcmp(key, "size"))
		return read_integer(r, depth, &settings->size, &settings->has_size);
	if (key_fits && !strcmp(key, "idleSeconds"))
		return read_integer(r, depth, &settings->idle, &settings->has_idle);
	if (key_fits && !strcmp(key, "vms"))
		return read_integer(r, depth, &settings->vms, &settings->has_vms);
	return json_skip_value(r, depth + 1);
}

static bool config_member(struct json_reader *r, const char *key, bool key_fits, int depth, void *ctx)
{
	json_skip_space(r);
	if (key_fits && !strcmp(key, "pool") && r->at < r->end && *r->at == '{')
		return json_read_object(r, depth + 1, pool_member, ctx);
	return json_skip_value(r, depth + 1);
}

void pool_config_from_options(struct pool *pool, const unsigned char *options, size_t len)
{
	struct field type_url, value, config_path;
	if (!message_field(options, len, 1, &type_url) || !is_options_type(&type_url) ||
	    !message_field(options, len, 2, &value) || !value.data ||
	    !message_field(value.data, value.len, 2, &config_path) || !config_path.len || config_path.len >= 4096)
		return;
	char path[4096];
	memcpy(path, config_path.data, config_path.len);
	path[config_path.len] = 0;
	size_t json_len;
	char *json = read_small_file(path, CONFIG_LIMIT, &json_len);
	if (!json)
		return;
	struct settings settings = { 0 };
	struct json_reader r = { json, json + json_len };
	if (json_read_object(&r, 0, config_member, &settings)) {
		if (settings.has_size && pool_valid_size(settings.size))
			pool->size = (int)settings.size;
		if (settings.has_idle && pool_valid_idle(settings.idle))
			pool->idle_seconds = (int)settings.idle;
		if (settings.has_vms && pool_valid_size(settings.vms))
			pool->vms = (int)settings.vms;
	}
	free(json);
}
