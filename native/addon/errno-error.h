/* The error the addons throw for a failed system call: its message strerror's, its `code` the errno's name
 * (EINVAL, ENOENT, …), as Node's own fs errors have. */
#pragma once

#include <string.h>

#include <node_api.h>

static inline napi_value throw_errno_error(napi_env env, int err)
{
	napi_value message, code, error;
	napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &message);
	napi_create_string_utf8(env, strerrorname_np(err) ? strerrorname_np(err) : "EIO", NAPI_AUTO_LENGTH, &code);
	napi_create_error(env, code, message, &error);
	napi_throw(env, error);
	return NULL;
}
