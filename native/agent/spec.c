#define _GNU_SOURCE
#include "spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PUSH(arr, n, val)                                         \
	do {                                                      \
		(arr) = xrealloc((arr), ((n) + 2) * sizeof *(arr)); \
		(arr)[(n)++] = (val);                             \
	} while (0)

/* String lists are kept NULL-terminated as they grow (PUSH leaves room for it). */
#define PUSH_STR(arr, n, val)       \
	do {                        \
		PUSH(arr, n, val);  \
		(arr)[(n)] = NULL;  \
	} while (0)

static int bad(char *err, size_t errlen, const char *key, const char *value, const char *why)
{
	snprintf(err, errlen, "invalid record %s=%.80s: %s", key, value, why);
	return -1;
}

static char **empty_list(void)
{
	return xcalloc(1, sizeof(char *));
}

int procspec_parse(const struct records *r, struct procspec *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof *p);
	size_t nargv = 0, nenvp = 0;
	p->argv = empty_list();
	p->envp = empty_list();
	p->cwd = "/";
	for (size_t i = 0; i < r->n; i++) {
		const char *k = r->v[i].key;
		char *v = r->v[i].value;
		uint64_t n;
		int64_t sn;
		if (!strcmp(k, "arg")) {
			PUSH_STR(p->argv, nargv, v);
		} else if (!strcmp(k, "env")) {
			PUSH_STR(p->envp, nenvp, v);
		} else if (!strcmp(k, "cwd")) {
			if (v[0] != '/')
				return bad(err, errlen, k, v, "not an absolute path");
			p->cwd = v;
		} else if (!strcmp(k, "uid") || !strcmp(k, "gid") || !strcmp(k, "agid")) {
			if (!parse_u64(v, &n) || n > UINT32_MAX)
				return bad(err, errlen, k, v, "not a number");
			if (k[0] == 'u')
				p->uid = (uid_t)n;
			else if (k[0] == 'g')
				p->gid = (gid_t)n;
			else
				PUSH(p->agids, p->nagids, (gid_t)n);
		} else if (!strcmp(k, "umask")) {
			if (!parse_oct(v, &n) || n > 0777)
				return bad(err, errlen, k, v, "not an octal mode");
			p->has_umask = true;
			p->umask = (mode_t)n;
		} else if (!strcmp(k, "rlimit")) {
			struct rlimit_spec rl;
			unsigned long long res, soft, hard;
			char extra;
			if (sscanf(v, "%llu %llu %llu%c", &res, &soft, &hard, &extra) != 3 || res > 64)
				return bad(err, errlen, k, v, "expected RESOURCE SOFT HARD");
			rl = (struct rlimit_spec){ (int)res, soft, hard };
			PUSH(p->rlimits, p->nrlimits, rl);
		} else if (!strncmp(k, "cap_", 4)) {
			uint64_t *set = !strcmp(k, "cap_bounding")      ? &p->cap_bounding
					: !strcmp(k, "cap_effective")   ? &p->cap_effective
					: !strcmp(k, "cap_permitted")   ? &p->cap_permitted
					: !strcmp(k, "cap_inheritable") ? &p->cap_inheritable
					: !strcmp(k, "cap_ambient")     ? &p->cap_ambient
									: NULL;
			if (set && !parse_hex(v, set))
				return bad(err, errlen, k, v, "not a hex mask");
		} else if (!strcmp(k, "no_new_privileges")) {
			p->no_new_privs = !strcmp(v, "1");
		} else if (!strcmp(k, "oom_score_adj")) {
			if (!parse_i64(v, &sn) || sn < -1000 || sn > 1000)
				return bad(err, errlen, k, v, "not a number in [-1000, 1000]");
			p->has_oom_score_adj = true;
			p->oom_score_adj = (int)sn;
		} else if (!strcmp(k, "terminal")) {
			p->terminal = !strcmp(v, "1");
		} else if (!strcmp(k, "apparmor_profile")) {
			p->apparmor_profile = v;
		} else if (!strcmp(k, "selinux_label")) {
			p->selinux_label = v;
		} else if (!strcmp(k, "console_socket")) {
			p->console_socket = v;
		} else if (!strcmp(k, "console_width") || !strcmp(k, "console_height")) {
			if (!parse_u64(v, &n) || n > 65535)
				return bad(err, errlen, k, v, "not a size");
			*(k[8] == 'w' ? &p->width : &p->height) = (unsigned short)n;
		} else if (!strcmp(k, "stdio_from_pid")) {
			if (!parse_u64(v, &n) || n == 0 || n > INT32_MAX)
				return bad(err, errlen, k, v, "not a pid");
			p->stdio_from_pid = (pid_t)n;
		} else if (!strcmp(k, "stdio")) {
			if (!strcmp(v, "inherit"))
				p->stdio = STDIO_INHERIT;
			else if (!strcmp(v, "stream"))
				p->stdio = STDIO_STREAM;
			else if (!strcmp(v, "null"))
				p->stdio = STDIO_NULL;
			else
				return bad(err, errlen, k, v, "expected inherit, stream or null");
		}
	}
	if (!nargv) {
		snprintf(err, errlen, "the process has no arg");
		return -1;
	}
	if (p->terminal && !p->console_socket && p->stdio != STDIO_STREAM) {
		snprintf(err, errlen, "a terminal needs a console_socket or stdio=stream");
		return -1;
	}
	return 0;
}

void procspec_free(struct procspec *p)
{
	free(p->argv);
	free(p->envp);
	free(p->agids);
	free(p->rlimits);
	memset(p, 0, sizeof *p);
}

static int parse_mount(char *v, struct mount_spec *m, char *err, size_t errlen)
{
	char *f[6];
	uint64_t flags, prop;
	if (split_fields(v, UNIT_SEP, f, 6) != 6)
		return bad(err, errlen, "mount", v, "expected 6 fields");
	if (f[0][0] != '/')
		return bad(err, errlen, "mount", f[0], "destination is not an absolute path");
	if (!parse_u64(f[3], &flags) || !parse_u64(f[4], &prop))
		return bad(err, errlen, "mount", f[0], "flags are not numbers");
	*m = (struct mount_spec){ f[0], f[1], f[2], f[5], (unsigned long)flags, (unsigned long)prop };
	return 0;
}

static int parse_device(char *v, struct device_spec *d, char *err, size_t errlen)
{
	char *f[7];
	uint64_t major, minor, mode, uid, gid;
	if (split_fields(v, UNIT_SEP, f, 7) != 7)
		return bad(err, errlen, "device", v, "expected 7 fields");
	if (f[0][0] != '/')
		return bad(err, errlen, "device", f[0], "not an absolute path");
	if (strlen(f[1]) != 1 || !strchr("cbp", f[1][0]))
		return bad(err, errlen, "device", f[0], "type is not c, b or p");
	if (!parse_u64(f[2], &major) || !parse_u64(f[3], &minor) || !parse_oct(f[4], &mode) ||
	    !parse_u64(f[5], &uid) || !parse_u64(f[6], &gid) || mode > 07777)
		return bad(err, errlen, "device", f[0], "bad number");
	*d = (struct device_spec){ f[0], f[1][0], (unsigned)major, (unsigned)minor, (mode_t)mode, (uid_t)uid, (gid_t)gid };
	return 0;
}

int ctrspec_parse(const struct records *r, struct ctrspec *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof *s);
	s->id = records_get(r, "id");
	s->rootfs = records_get(r, "rootfs");
	s->rootfs_propagation = 0;
	s->masked = empty_list();
	s->readonly_paths = empty_list();
	s->sysctls = empty_list();
	s->uid_map = empty_list();
	s->gid_map = empty_list();
	if (!s->rootfs || s->rootfs[0] != '/') {
		snprintf(err, errlen, "rootfs is missing or not absolute");
		return -1;
	}
	struct hook_spec *hook = NULL;
	for (size_t i = 0; i < r->n; i++) {
		const char *k = r->v[i].key;
		char *v = r->v[i].value;
		uint64_t n;
		if (!strcmp(k, "readonly_rootfs")) {
			s->readonly_rootfs = !strcmp(v, "1");
		} else if (!strcmp(k, "ns")) {
			char *path = strchr(v, UNIT_SEP);
			if (path)
				*path++ = 0;
			int idx = ns_index(v);
			if (idx < 0)
				return bad(err, errlen, k, v, "unknown namespace type");
			if (path && path[0] != '/')
				return bad(err, errlen, k, path, "not an absolute path");
			s->ns_new[idx] = !path;
			s->ns_path[idx] = path;
		} else if (!strcmp(k, "uid_map") || !strcmp(k, "gid_map")) {
			unsigned long a, b, c;
			char extra;
			if (sscanf(v, "%lu %lu %lu%c", &a, &b, &c, &extra) != 3)
				return bad(err, errlen, k, v, "expected CONTAINER_ID HOST_ID SIZE");
			if (k[0] == 'u')
				PUSH_STR(s->uid_map, s->nuid_map, v);
			else
				PUSH_STR(s->gid_map, s->ngid_map, v);
		} else if (!strcmp(k, "hostname")) {
			s->hostname = v;
		} else if (!strcmp(k, "domainname")) {
			s->domainname = v;
		} else if (!strcmp(k, "rootfs_propagation")) {
			if (!parse_u64(v, &n))
				return bad(err, errlen, k, v, "not a number");
			s->rootfs_propagation = (unsigned long)n;
		} else if (!strcmp(k, "mount")) {
			struct mount_spec m;
			if (parse_mount(v, &m, err, errlen))
				return -1;
			PUSH(s->mounts, s->nmounts, m);
		} else if (!strcmp(k, "device")) {
			struct device_spec d;
			if (parse_device(v, &d, err, errlen))
				return -1;
			PUSH(s->devices, s->ndevices, d);
		} else if (!strcmp(k, "masked")) {
			PUSH_STR(s->masked, s->nmasked, v);
		} else if (!strcmp(k, "readonly_path")) {
			PUSH_STR(s->readonly_paths, s->nreadonly_paths, v);
		} else if (!strcmp(k, "sysctl")) {
			if (!strchr(v, '=') || v[0] == '=' || strstr(v, ".."))
				return bad(err, errlen, k, v, "expected KEY=VALUE");
			PUSH_STR(s->sysctls, s->nsysctls, v);
		} else if (!strcmp(k, "hook")) {
			struct hook_spec h = { 0 };
			if (!strcmp(v, "create_container"))
				h.phase = HOOK_CREATE_CONTAINER;
			else if (!strcmp(v, "start_container"))
				h.phase = HOOK_START_CONTAINER;
			else
				return bad(err, errlen, k, v, "unknown hook phase");
			h.argv = empty_list();
			h.envp = empty_list();
			PUSH(s->hooks, s->nhooks, h);
			hook = &s->hooks[s->nhooks - 1];
		} else if (!strncmp(k, "hook_", 5)) {
			if (!hook)
				return bad(err, errlen, k, v, "no hook record before it");
			if (!strcmp(k, "hook_path")) {
				hook->path = v;
			} else if (!strcmp(k, "hook_arg")) {
				PUSH_STR(hook->argv, hook->nargv, v);
			} else if (!strcmp(k, "hook_env")) {
				PUSH_STR(hook->envp, hook->nenvp, v);
			} else if (!strcmp(k, "hook_timeout")) {
				if (!parse_u64(v, &n) || n > 86400 * 365)
					return bad(err, errlen, k, v, "not a number of seconds");
				hook->timeout = (unsigned)n;
			}
		}
	}
	for (size_t i = 0; i < s->nhooks; i++) {
		struct hook_spec *h = &s->hooks[i];
		if (!h->path || h->path[0] != '/') {
			snprintf(err, errlen, "a hook has no absolute hook_path");
			return -1;
		}
		if (!h->nargv)
			PUSH_STR(h->argv, h->nargv, (char *)h->path);
	}
	return procspec_parse(r, &s->proc, err, errlen);
}

void ctrspec_free(struct ctrspec *s)
{
	for (size_t i = 0; i < s->nhooks; i++) {
		free(s->hooks[i].argv);
		free(s->hooks[i].envp);
	}
	free(s->hooks);
	free(s->mounts);
	free(s->devices);
	free(s->masked);
	free(s->readonly_paths);
	free(s->sysctls);
	free(s->uid_map);
	free(s->gid_map);
	procspec_free(&s->proc);
	memset(s, 0, sizeof *s);
}
