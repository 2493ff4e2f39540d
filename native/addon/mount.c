/*
 * mount.node: mount(2) for the shim (src/shim/rootfs-mounts.ts), which mounts each container's rootfs on the
 * create path: mount(8) run from Node costs a fork of the shim and the tool's own start, 8-14 ms; the call itself
 * a fraction of a millisecond. A Node-API addon, built with the machine's gcc against Node's headers.
 *
 *   mount(source, target, fstype, flags, data)   throws an Error whose `code` is the errno's name
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mount.h>

#define NAPI_VERSION 8
#include <node_api.h>

#include "errno-error.h"

/* A string argument (NULL for null or undefined), malloc'd. */
static char *string_arg(napi_env env, napi_value value)
{
	napi_valuetype type;
	size_t len;
	if (napi_typeof(env, value, &type) != napi_ok || type != napi_string ||
	    napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok)
		return NULL;
	char *text = malloc(len + 1);
	if (text && napi_get_value_string_utf8(env, value, text, len + 1, &len) != napi_ok) {
		free(text);
		return NULL;
	}
	return text;
}

static napi_value do_mount(napi_env env, napi_callback_info info)
{
	napi_value argv[5];
	size_t argc = 5;
	int64_t flags;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 ||
	    napi_get_value_int64(env, argv[3], &flags) != napi_ok) {
		napi_throw_type_error(env, NULL, "mount(source, target, fstype, flags, data)");
		return NULL;
	}
	char *source = string_arg(env, argv[0]), *target = string_arg(env, argv[1]), *fstype = string_arg(env, argv[2]),
	     *data = string_arg(env, argv[4]);
	int rc = target ? mount(source, target, fstype, (unsigned long)flags, data) : -1;
	int err = target ? errno : EINVAL;
	free(source);
	free(target);
	free(fstype);
	free(data);
	return rc == 0 ? NULL : throw_errno_error(env, err);
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_value fn;
	napi_create_function(env, "mount", NAPI_AUTO_LENGTH, do_mount, NULL, &fn);
	napi_set_named_property(env, exports, "mount", fn);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
