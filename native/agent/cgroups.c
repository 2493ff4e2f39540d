#define _GNU_SOURCE
#include "cgroups.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_record.h"
#include "log.h"
#include "util.h"

#define CGROUP_ROOT "/sys/fs/cgroup" /* cgroup2 itself in unified mode; the v1 hierarchies under it */

/* The v1 controllers a container's processes join, as runc's fs manager does (those mounted). */
static const char *const v1_controllers[] = { "cpu",	"cpuacct", "cpuset",  "memory",	 "pids",    "freezer",
					      "blkio", "devices", "hugetlb", "net_cls", "net_prio", "rdma" };
/* One more: a hybrid host's cgroup2 hierarchy, for the device program (cgroups_create's cgroup2_mount). */
#define MAX_DIRS (ARRAY_LEN(v1_controllers) + 1)

struct cgdir {
	const char *controller; /* "" for the unified hierarchy */
	char *path;
	bool shared;	/* the same directory as an earlier one (co-mounted controllers): joined and removed once */
	int created;	/* how many levels of path, the leaf up, this agent made */
	bool remove;	/* the leaf goes at destroy */
};

struct cgroups {
	char *id;
	bool unified;
	struct cgdir dirs[MAX_DIRS];
	size_t n;
	int oom_fd, oom_control_fd;
	uint64_t oom_seen, oom_at_create;
	char memory_limit[32]; /* the value last written to memory.limit_in_bytes or memory.max, for messages */
	bool recorded;         /* the record holds a line of this create */
};

struct hierarchy {
	const char *controller;
	char mountpoint[1024], root[1024];
};

static bool list_has(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; p && *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && !strncmp(p, word, n))
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/*
 * The mounted hierarchies from /proc/self/mountinfo; sets *unified when /sys/fs/cgroup itself is cgroup2. With
 * v1 hierarchies, a cgroup2 mount at cgroup2_mount (when not NULL) is one more, controller "" (*found says so).
 */
static size_t find_hierarchies(struct hierarchy *h, bool *unified, const char *cgroup2_mount, bool *found)
{
	size_t n = 0;
	*unified = *found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return 0;
	char line[4096];
	while (fgets(line, sizeof line, f)) {
		char root[1024], point[1024], fstype[64], super[1024];
		char *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %1023s %1023s", root, point) != 2 ||
		    sscanf(sep + 3, "%63s %*s %1023s", fstype, super) != 2)
			continue;
		if (!strcmp(fstype, "cgroup2") && !strcmp(point, CGROUP_ROOT)) {
			*unified = true;
			h[0].controller = "";
			snprintf(h[0].mountpoint, sizeof h[0].mountpoint, "%s", point);
			snprintf(h[0].root, sizeof h[0].root, "%s", root);
			n = 1;
			break;
		}
		if (!strcmp(fstype, "cgroup2") && cgroup2_mount && !strcmp(point, cgroup2_mount) && !*found &&
		    n < MAX_DIRS) {
			*found = true;
			h[n].controller = "";
			snprintf(h[n].mountpoint, sizeof h[n].mountpoint, "%s", point);
			snprintf(h[n].root, sizeof h[n].root, "%s", root);
			n++;
			continue;
		}
		/* Only the host's own mounts: a container's view of a hierarchy may be mounted elsewhere too. */
		if (strcmp(fstype, "cgroup") || strncmp(point, CGROUP_ROOT "/", strlen(CGROUP_ROOT "/")))
			continue;
		for (size_t i = 0; i < ARRAY_LEN(v1_controllers); i++) {
			bool known = false;
			for (size_t j = 0; j < n; j++)
				known |= !strcmp(h[j].controller, v1_controllers[i]);
			if (known || !list_has(super, v1_controllers[i]) || n == MAX_DIRS - 1)
				continue;
			h[n].controller = v1_controllers[i];
			snprintf(h[n].mountpoint, sizeof h[n].mountpoint, "%s", point);
			snprintf(h[n].root, sizeof h[n].root, "%s", root);
			n++;
		}
	}
	fclose(f);
	return n;
}

/* The agent's own cgroup in a hierarchy, from the text of /proc/self/cgroup ("/" when it is not listed). */
static void own_cgroup(const char *self_cgroup, const char *controller, char *out, size_t len)
{
	snprintf(out, len, "/");
	char text[8192];
	snprintf(text, sizeof text, "%s", self_cgroup);
	char *next = NULL;
	for (char *line = strtok_r(text, "\n", &next); line; line = strtok_r(NULL, "\n", &next)) {
		char *ctrls = strchr(line, ':'), *path = ctrls ? strchr(ctrls + 1, ':') : NULL;
		if (!path)
			continue;
		*path++ = 0;
		ctrls++;
		if (*controller ? list_has(ctrls, controller) : !*ctrls) {
			snprintf(out, len, "%s", path);
			return;
		}
	}
}

static bool has_processes(const char *dir)
{
	char path[4096], text[16];
	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	return read_file(path, text, sizeof text) == 0 && text[0] >= '0' && text[0] <= '9';
}

/* A new v1 cpuset has no cpus or mems, and takes no task until it has: they come from its parent. */
static void inherit_cpuset(const char *dir)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		char path[4200], parent[4096], value[4096];
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		if (read_file(path, value, sizeof value) < 0 || (value[0] && value[0] != '\n'))
			continue;
		snprintf(parent, sizeof parent, "%s", dir);
		*strrchr(parent, '/') = 0;
		snprintf(path, sizeof path, "%s/%s", parent, files[i]);
		if (read_file(path, value, sizeof value) == 0) {
			snprintf(path, sizeof path, "%s/%s", dir, files[i]);
			write_file(path, value);
		}
	}
}

/* cgroup v2: a controller is usable in a directory only once every ancestor enables it for its children. */
static void enable_controllers(const char *dir)
{
	char path[4200], available[1024];
	snprintf(path, sizeof path, "%s/cgroup.controllers", dir);
	if (read_file(path, available, sizeof available) < 0)
		return;
	static const char *const wanted[] = { "cpu", "cpuset", "memory", "pids", "io" };
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", dir);
	for (size_t i = 0; i < ARRAY_LEN(wanted); i++) {
		char word[16], *p = available;
		bool present = false;
		for (int n; sscanf(p, "%15s%n", word, &n) == 1; p += n)
			present |= !strcmp(word, wanted[i]);
		if (present) {
			snprintf(word, sizeof word, "+%s", wanted[i]);
			/* Refused (EBUSY) where dir holds processes itself: the writes of the limits then fail, saying where. */
			write_file(path, word);
		}
	}
}

/* mkdir -p of base/rel (base exists), counting the levels it made, the leaf up. */
static int make_dirs(bool unified, const char *base, const char *rel, struct cgdir *d)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/%s", base, rel) >= (int)sizeof path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Another container's removal of a parent both share may race with this walk: walk again. */
	for (int attempt = 0;; attempt++) {
		d->created = 0;
		bool vanished = false;
		for (char *p = path + strlen(base) + 1;; p++) {
			if (*p != '/' && *p)
				continue;
			char c = *p;
			*p = 0;
			if (unified) {
				char *slash = strrchr(path, '/');
				*slash = 0;
				enable_controllers(path);
				*slash = '/';
			}
			if (mkdir(path, 0755) == 0)
				d->created++;
			else if (errno == ENOENT)
				vanished = true;
			else if (errno != EEXIST)
				goto fail;
			if (!vanished && !strcmp(d->controller, "cpuset"))
				inherit_cpuset(path);
			*p = c;
			if (!c || vanished)
				break;
		}
		if (!vanished)
			break;
		if (attempt == 4) {
			errno = ENOENT;
			return -1;
		}
	}
	d->path = xstrdup(path);
	return 0;
fail:;
	int err = errno;
	/* path ends at the level that failed: the levels made above it go again. */
	for (int level = 0; level < d->created; level++) {
		*strrchr(path, '/') = 0;
		rmdir(path);
	}
	d->created = 0;
	errno = err;
	return -1;
}

/* rmdir of the leaf, then of the parents this agent made (as long as they are empty). */
static int remove_dirs(char *path, int created)
{
	if (rmdir(path) < 0 && errno != ENOENT)
		return -1;
	for (int level = 1; level < created; level++) {
		char *slash = strrchr(path, '/');
		if (!slash)
			break;
		*slash = 0;
		if (rmdir(path) < 0)
			break; /* a sibling lives on in it */
	}
	return 0;
}

/* Directories whose last tasks were still exiting (zombies count) when their container was forgotten. */
struct leftover {
	char *path;
	int created;
};
static struct leftover *leftovers;
static size_t nleftovers;
static uint64_t leftovers_since;

static void remove_later(const char *path, int created)
{
	char copy[4096];
	snprintf(copy, sizeof copy, "%s", path);
	if (remove_dirs(copy, created) == 0)
		return;
	if (errno != EBUSY) {
		log_msg("cannot remove the cgroup %s: %s", path, errtext(errno));
		return;
	}
	if (!nleftovers)
		leftovers_since = now_mono_ms();
	leftovers = xrealloc(leftovers, (nleftovers + 1) * sizeof *leftovers);
	leftovers[nleftovers++] = (struct leftover){ xstrdup(path), created };
}

bool cgroups_retry_removals(void)
{
	size_t kept = 0;
	bool give_up = nleftovers && now_mono_ms() - leftovers_since > 10000;
	for (size_t i = 0; i < nleftovers; i++) {
		struct leftover *l = &leftovers[i];
		char copy[4096];
		snprintf(copy, sizeof copy, "%s", l->path);
		if (remove_dirs(copy, l->created) == 0 || give_up) {
			if (give_up)
				log_msg("cannot remove the cgroup %s: %s", l->path, errtext(errno));
			free(l->path);
		} else {
			leftovers[kept++] = *l;
		}
	}
	nleftovers = kept;
	return nleftovers > 0;
}

static void destroy_dirs(struct cgroups *cg)
{
	for (size_t i = 0; i < cg->n; i++) {
		struct cgdir *d = &cg->dirs[i];
		if (d->path && !d->shared && d->remove)
			remove_later(d->path, d->created);
		free(d->path);
	}
	cg->n = 0;
	cgroup_record_drop(cg->id);
	cg->recorded = false;
}

/* What the host removes should the agent die before it could (cgroup_record.h): each directory once it is made. */
static void record_dir(struct cgroups *cg, const struct cgdir *d)
{
	char line[4200];
	snprintf(line, sizeof line, "%d %s\n", d->created, d->path);
	cgroup_record_add(cg->id, line, !cg->recorded);
	cg->recorded = true;
}

static struct cgdir *dir_for(const struct cgroups *cg, const char *controller)
{
	for (size_t i = 0; i < cg->n; i++)
		if (cg->unified || !strcmp(cg->dirs[i].controller, controller))
			return (struct cgdir *)&cg->dirs[i];
	return NULL;
}

/* A counter of memory.events (v2) or memory.oom_control (v1): oom_kill, under_oom… */
static uint64_t read_oom_counter(const struct cgroups *cg, const char *name)
{
	const struct cgdir *d = dir_for(cg, "memory");
	char path[4096], text[1024], key[64];
	snprintf(path, sizeof path, "%s/%s", d->path, cg->unified ? "memory.events" : "memory.oom_control");
	if (read_file(path, text, sizeof text) < 0)
		return 0;
	size_t len = (size_t)snprintf(key, sizeof key, "%s ", name);
	for (const char *line = text; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (!strncmp(line, key, len))
			return strtoull(line + len, NULL, 10);
	return 0;
}

/* v1: an eventfd signalled through cgroup.event_control on every OOM; v2: inotify on memory.events. */
static void watch_oom(struct cgroups *cg)
{
	const struct cgdir *d = dir_for(cg, "memory");
	if (!d)
		return;
	char path[4096];
	if (cg->unified) {
		snprintf(path, sizeof path, "%s/memory.events", d->path);
		cg->oom_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (cg->oom_fd >= 0 && inotify_add_watch(cg->oom_fd, path, IN_MODIFY) < 0) {
			close(cg->oom_fd);
			cg->oom_fd = -1;
		}
	} else {
		snprintf(path, sizeof path, "%s/memory.oom_control", d->path);
		cg->oom_control_fd = open(path, O_RDONLY | O_CLOEXEC);
		cg->oom_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		char text[64];
		snprintf(text, sizeof text, "%d %d", cg->oom_fd, cg->oom_control_fd);
		snprintf(path, sizeof path, "%s/cgroup.event_control", d->path);
		if (cg->oom_control_fd < 0 || cg->oom_fd < 0 || write_file(path, text) < 0) {
			if (cg->oom_fd >= 0)
				close(cg->oom_fd);
			cg->oom_fd = -1;
		}
	}
	cg->oom_seen = cg->oom_at_create = read_oom_counter(cg, "oom_kill");
}

struct cgroups *cgroups_create(const char *id, const char *path, const char *cgroup2_mount, char *err, size_t errlen)
{
	struct hierarchy h[MAX_DIRS];
	bool unified, found;
	size_t nh = find_hierarchies(h, &unified, cgroup2_mount, &found);
	err[0] = 0;
	if (cgroup2_mount && !unified && !found) {
		snprintf(err, errlen, "%s is not a cgroup2 mount", cgroup2_mount);
		errno = EINVAL;
		return NULL;
	}
	if (!nh)
		return NULL;
	char rel[4096];
	if (path)
		snprintf(rel, sizeof rel, "%s", path);
	else
		snprintf(rel, sizeof rel, "runbox/%s", id);
	/* Read once: a relative path is under the agent's own cgroup in each hierarchy. */
	char self_cgroup[8192] = ""; /* left empty when unreadable: the hierarchies' roots then */
	if (rel[0] != '/')
		read_file("/proc/self/cgroup", self_cgroup, sizeof self_cgroup);
	if (strchr(rel, '\n')) {
		snprintf(err, errlen, "the cgroup path must not hold a newline");
		errno = EINVAL;
		return NULL;
	}
	struct cgroups *cg = xcalloc(1, sizeof *cg);
	cg->id = xstrdup(id);
	cg->unified = unified;
	cg->oom_fd = cg->oom_control_fd = -1;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool taken = false;
		for (size_t i = 0; i < nh; i++) {
			struct cgdir *d = &cg->dirs[cg->n++];
			*d = (struct cgdir){ .controller = h[i].controller };
			char base[4096];
			const char *under = rel;
			if (rel[0] == '/') {
				snprintf(base, sizeof base, "%s", h[i].mountpoint);
				under = rel + 1;
			} else {
				char own[2048];
				own_cgroup(self_cgroup, h[i].controller, own, sizeof own);
				size_t root_len = strcmp(h[i].root, "/") ? strlen(h[i].root) : 0;
				if (strncmp(own, h[i].root, root_len))
					root_len = 0;
				const char *inner = own + root_len;
				snprintf(base, sizeof base, "%s%s", h[i].mountpoint, strcmp(inner, "/") ? inner : "");
			}
			if (!*under) { /* the hierarchy's own directory: joined, never removed */
				d->path = xstrdup(base);
			} else if (make_dirs(!*h[i].controller, base, under, d) < 0) {
				snprintf(err, errlen, "cannot create the cgroup %s/%s: %s", base, under, errtext(errno));
				goto fail;
			} else if (!d->created && has_processes(d->path)) {
				taken = true; /* not ours to remove */
			} else {
				d->remove = true;
				/* runbox/ is runbox's own: whichever container leaves it empty removes it. */
				if (!path && d->created < 2)
					d->created = 2;
			}
			for (size_t j = 0; j + 1 < cg->n; j++)
				d->shared |= !strcmp(cg->dirs[j].path, d->path);
			if (d->remove && !d->shared)
				record_dir(cg, d);
		}
		if (!taken)
			break;
		if (path || attempt) {
			snprintf(err, errlen, "the cgroup %s is not empty: another container's processes are in it", rel);
			goto fail;
		}
		/* The default name is another agent's (the same id under another state root). */
		destroy_dirs(cg);
		snprintf(rel, sizeof rel, "runbox/%s@%d", id, getpid());
	}
	watch_oom(cg);
	return cg;
fail:;
	int err_no = errno ? errno : EINVAL;
	destroy_dirs(cg);
	free(cg->id);
	free(cg);
	errno = err_no;
	return NULL;
}

int cgroups_apply(struct cgroups *cg, const struct records *r, char *err, size_t errlen)
{
	/* Some values must go in one order to raise a limit and in the other to lower it (memory and memsw, cfs
	 * quota and period): what fails in one pass is tried again after the others. */
	bool *failed = xcalloc(r->n, sizeof *failed);
	int result = 0, first_errno = 0;
	for (int pass = 0; pass < 2; pass++) {
		bool progress = false, failures = false;
		for (size_t i = 0; i < r->n; i++) {
			if (strcmp(r->v[i].key, "cgroup_set") || (pass && !failed[i]))
				continue;
			char value[4096], *f[4];
			snprintf(value, sizeof value, "%s", r->v[i].value);
			size_t nf = split_fields(value, UNIT_SEP, f, 4);
			/* The optional 4th field names the setting (config.json's) for the messages. */
			char setting[256] = "";
			if (nf == 4)
				snprintf(setting, sizeof setting, "%s: ", f[3]);
			if (nf < 3 || strchr(f[1], '/') || !strcmp(f[1], "..")) {
				snprintf(err, errlen, "malformed cgroup_set record %s", r->v[i].value);
				errno = EINVAL;
				free(failed);
				return -1;
			}
			const struct cgdir *d = dir_for(cg, f[0]);
			if (!d) {
				snprintf(err, errlen, "%sthe cgroup controller %s is not mounted here", setting, f[0]);
				errno = EOPNOTSUPP;
				free(failed);
				return -1;
			}
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", d->path, f[1]);
			if (write_file(path, f[2]) == 0) {
				if (!strcmp(f[1], "memory.limit_in_bytes") || !strcmp(f[1], "memory.max"))
					snprintf(cg->memory_limit, sizeof cg->memory_limit, "%s", f[2]);
				failed[i] = false;
				progress = true;
				continue;
			}
			if (errno == ENOENT) {
				snprintf(err, errlen, "%sthe kernel offers no %s here", setting, path);
				free(failed);
				errno = EOPNOTSUPP;
				return -1;
			}
			snprintf(err, errlen, "%scgroup: write %s to %s: %s", setting, f[2], path, errtext(errno));
			first_errno = errno;
			failed[i] = failures = true;
		}
		if (!failures) {
			result = 0;
			break;
		}
		result = -1;
		if (!progress)
			break;
	}
	free(failed);
	errno = first_errno;
	return result;
}

int cgroups_join(const struct cgroups *cg, bool in_unified, const char **failed)
{
	for (size_t i = 0; cg && i < cg->n; i++) {
		char path[4096];
		if (cg->dirs[i].shared || (in_unified && !cg->dirs[i].controller[0]))
			continue;
		/* A v1 hierarchy's tasks file moves the calling thread without the kernel's global threadgroup lock,
		 * which cgroup.procs takes and whose first taking waits for an RCU grace period (some 5-15 ms). The
		 * caller is a fork of the agent, one thread: moving it moves the process. A cgroup2 domain cgroup takes
		 * whole processes only (caller_reaps_fork starts the child in it instead, where it can). */
		snprintf(path, sizeof path, "%s/%s", cg->dirs[i].path, cg->dirs[i].controller[0] ? "tasks" : "cgroup.procs");
		if (write_file(path, "0") < 0) {
			*failed = cg->dirs[i].path;
			return -1;
		}
	}
	return 0;
}

int cgroups_open_unified(const struct cgroups *cg)
{
	for (size_t i = 0; cg && i < cg->n; i++)
		if (!cg->dirs[i].controller[0])
			return open(cg->dirs[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return -1;
}

const char *cgroups_unified(const struct cgroups *cg)
{
	for (size_t i = 0; cg && i < cg->n; i++)
		if (!*cg->dirs[i].controller)
			return cg->dirs[i].path;
	return NULL;
}

const char *cgroups_freezer(const struct cgroups *cg)
{
	const struct cgdir *d = cg && !cg->unified ? dir_for(cg, "freezer") : NULL;
	return d ? d->path : NULL;
}

int cgroups_oom_fd(const struct cgroups *cg)
{
	return cg ? cg->oom_fd : -1;
}

uint64_t cgroups_oom_kills(struct cgroups *cg)
{
	if (!cg || !dir_for(cg, "memory"))
		return 0;
	char drain[4096];
	bool notified = false;
	if (cg->oom_fd >= 0)
		while (read(cg->oom_fd, drain, sizeof drain) > 0)
			notified = true;
	uint64_t kills = read_oom_counter(cg, "oom_kill");
	uint64_t fresh = kills > cg->oom_seen ? kills - cg->oom_seen : 0;
	cg->oom_seen = kills;
	/* With the OOM killer disabled (v1) nothing is killed: the tasks wait, under_oom, and that is the event. */
	if (!fresh && notified && !cg->unified && read_oom_counter(cg, "under_oom"))
		fresh = 1;
	return fresh;
}

bool cgroups_oom_killed_since_create(const struct cgroups *cg, char *limit, size_t len)
{
	const struct cgdir *d = cg ? dir_for(cg, "memory") : NULL;
	if (!d || read_oom_counter(cg, "oom_kill") <= cg->oom_at_create)
		return false;
	snprintf(limit, len, "%s", cg->memory_limit[0] ? cg->memory_limit : "unset");
	return true;
}

void cgroups_destroy(struct cgroups *cg)
{
	if (!cg)
		return;
	if (cg->oom_fd >= 0)
		close(cg->oom_fd);
	if (cg->oom_control_fd >= 0)
		close(cg->oom_control_fd);
	destroy_dirs(cg);
	free(cg->id);
	free(cg);
}
