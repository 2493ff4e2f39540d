/*
 * huge-pages.node: whether this process's memory (and so that of the programs it starts: the setting is inherited
 * across fork and execve) may be backed by transparent huge pages, PR_SET_THP_DISABLE. QEMU asks for them for
 * TCG's code buffer and some of its own, where each 2 MiB page counts whole however little of it is used
 * (src/host/huge-pages.ts).
 *
 *   hugePagesDisabled()    whether they are disabled now
 *   disableHugePages()     each throws an Error whose `code` is the errno's name
 *   allowHugePages()
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/prctl.h>

#define NAPI_VERSION 8
#include <node_api.h>

#include "errno-error.h"

static napi_value huge_pages_disabled(napi_env env, napi_callback_info info)
{
	(void)info;
	int rc = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	if (rc < 0)
		return throw_errno_error(env, errno);
	napi_value result;
	napi_get_boolean(env, rc != 0, &result);
	return result;
}

static napi_value set_disabled(napi_env env, int disabled)
{
	if (prctl(PR_SET_THP_DISABLE, disabled, 0, 0, 0) < 0)
		return throw_errno_error(env, errno);
	return NULL;
}

static napi_value disable_huge_pages(napi_env env, napi_callback_info info)
{
	(void)info;
	return set_disabled(env, 1);
}

static napi_value allow_huge_pages(napi_env env, napi_callback_info info)
{
	(void)info;
	return set_disabled(env, 0);
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_value fn;
	napi_create_function(env, "hugePagesDisabled", NAPI_AUTO_LENGTH, huge_pages_disabled, NULL, &fn);
	napi_set_named_property(env, exports, "hugePagesDisabled", fn);
	napi_create_function(env, "disableHugePages", NAPI_AUTO_LENGTH, disable_huge_pages, NULL, &fn);
	napi_set_named_property(env, exports, "disableHugePages", fn);
	napi_create_function(env, "allowHugePages", NAPI_AUTO_LENGTH, allow_huge_pages, NULL, &fn);
	napi_set_named_property(env, exports, "allowHugePages", fn);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
