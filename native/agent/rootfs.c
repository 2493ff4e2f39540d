#define _GNU_SOURCE
#include "rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "child.h"
#include "log.h"
#include "util.h"

/* Resolves path as if root were "/": no "..", absolute symlink or magic link leads out of it. */
static int open_in_root(int root, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	return (int)syscall(SYS_openat2, root, path, &how, sizeof how);
}

static const char *fd_path(int fd, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
	return buf;
}

/* mkdir -p inside the root; returns an O_PATH fd of the directory. */
static int mkdir_in_root(int root, const char *path)
{
	char buf[4096];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		child_fail(ENAMETOOLONG, "mkdir %s", path);
	int dir = open_in_root(root, "/", O_PATH | O_DIRECTORY);
	if (dir < 0)
		child_fail(errno, "open the rootfs");
	char *start = buf;
	while (*start) {
		while (*start == '/')
			start++;
		if (!*start)
			break;
		char *end = strchrnul(start, '/');
		char saved = *end;
		*end = 0;
		int next = open_in_root(root, buf, O_PATH | O_DIRECTORY);
		if (next < 0 && errno == ENOENT) {
			if (mkdirat(dir, start, 0755) < 0 && errno != EEXIST)
				child_fail(errno, "mkdir %s", buf);
			next = open_in_root(root, buf, O_PATH | O_DIRECTORY);
		}
		if (next < 0)
			child_fail(errno, "mkdir %s", buf);
		close(dir);
		dir = next;
		*end = saved;
		start = end;
	}
	return dir;
}

/* Splits "/a/b/c" into its parent (a directory fd, created as needed) and "c". */
static int parent_in_root(int root, const char *path, char *name, size_t namelen)
{
	char parent[4096];
	if (snprintf(parent, sizeof parent, "%s", path) >= (int)sizeof parent)
		child_fail(ENAMETOOLONG, "%.100s...", path);
	char *slash = strrchr(parent, '/');
	if (snprintf(name, namelen, "%s", slash ? slash + 1 : parent) >= (int)namelen)
		child_fail(ENAMETOOLONG, "%.100s...", path);
	if (slash)
		slash[slash == parent ? 1 : 0] = 0;
	if (!*name)
		child_fail(EINVAL, "%s has no file name", path);
	return mkdir_in_root(root, slash ? parent : "/");
}

/* The mount point of dest, made if missing: a directory, or an empty file when file is set. */
static int mount_point(int root, const char *dest, bool file)
{
	int fd = open_in_root(root, dest, O_PATH);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	char name[256];
	int parent = parent_in_root(root, dest, name, sizeof name);
	if (file) {
		/* O_EXCL|O_NOFOLLOW: a dangling symlink there is not followed out of the rootfs. */
		int f = openat(parent, name, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0644);
		if (f >= 0)
			close(f);
	} else {
		mkdirat(parent, name, 0755);
	}
	close(parent);
	return open_in_root(root, dest, O_PATH);
}

static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long flags = 0;
	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		flags |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		flags |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		flags |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		flags |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		flags |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		flags |= MS_RELATIME;
	return flags;
}

/* Remounts a bind mount with flags; in a user namespace, flags locked by the source must be kept. */
static int remount_bind(const char *path, unsigned long flags)
{
	flags &= ~(unsigned long)(MS_BIND | MS_REC | MS_REMOUNT);
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags, NULL) == 0)
		return 0;
	if (errno != EPERM)
		return -1;
	return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags | locked_flags(path), NULL);
}

static bool host_has_cgroup2(void)
{
	struct statfs sf;
	return statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

/* path made absolute, with no "", "." or ".." component (".." stops at "/"). */
static void clean_path(const char *path, char *out, size_t len)
{
	char copy[4096];
	snprintf(copy, sizeof copy, "%s", path);
	size_t n = 0;
	out[0] = 0;
	char *save = NULL;
	for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		if (!strcmp(part, ".")) {
			continue;
		} else if (!strcmp(part, "..")) {
			while (n > 0 && out[--n] != '/')
				;
			out[n] = 0;
		} else if (n + strlen(part) + 2 < len) {
			n += (size_t)snprintf(out + n, len - n, "/%s", part);
		}
	}
	if (!n)
		snprintf(out, len, "/");
}

/* Where fd is, inside the rootfs root: "/proc" and the like, or "" when it cannot be told. */
static void path_in_root(int root, int fd, char *out, size_t len)
{
	char link[64], rootpath[4096], path[4096];
	ssize_t n = readlink(fd_path(root, link, sizeof link), rootpath, sizeof rootpath - 1);
	ssize_t m = readlink(fd_path(fd, link, sizeof link), path, sizeof path - 1);
	out[0] = 0;
	if (n <= 0 || m <= 0)
		return;
	rootpath[n] = path[m] = 0;
	size_t prefix = strcmp(rootpath, "/") ? (size_t)n : 0;
	if (!strncmp(path, rootpath, prefix) && (path[prefix] == '/' || !path[prefix]))
		snprintf(out, len, "%s", path[prefix] ? path + prefix : "/");
}

static bool is_fs(const char *path, long magic)
{
	struct statfs sf;
	return statfs(path, &sf) == 0 && sf.f_type == magic;
}

/*
 * runc's checkProcMount: over /proc only procfs, and inside it only the files lxcfs emulates; as an addition of
 * runbox's, over /sys (the whole of it) only sysfs.
 */
static void check_proc_sys(const char *dest, const char *source, const struct mount_spec *m)
{
	static const char *const lxcfs_files[] = {
		"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
		"/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
	};
	if (!strcmp(dest, "/proc")) {
		if (!is_fs(source, PROC_SUPER_MAGIC))
			child_fail_plain(EINVAL, "mount %s on %s: \"%s\" cannot be mounted because it is not of type proc",
					 source, m->dest, dest);
	} else if (!strncmp(dest, "/proc/", 6)) {
		for (size_t i = 0; i < ARRAY_LEN(lxcfs_files); i++)
			if (!strcmp(dest, lxcfs_files[i]))
				return;
		child_fail_plain(EINVAL, "mount %s on %s: \"%s\" cannot be mounted because it is inside /proc", source,
				 m->dest, dest);
	} else if (!strcmp(dest, "/sys") && !is_fs(source, SYSFS_MAGIC)) {
		child_fail_plain(EINVAL, "mount %s on %s: \"%s\" cannot be mounted because it is not of type sysfs",
				 source, m->dest, dest);
	}
}

static void mount_one(int root, const struct mount_spec *m)
{
	char path[64];
	const char *source = m->source, *fstype = m->fstype;
	unsigned long flags = m->flags;
	bool bind = (flags & MS_BIND) || !strcmp(fstype, "bind");
	if (!strcmp(fstype, "cgroup") && !bind) {
		/* The host's cgroup layout, not a fresh (v1) hierarchy that could clash with the host's mounts. */
		if (host_has_cgroup2()) {
			fstype = "cgroup2";
		} else {
			source = "/sys/fs/cgroup";
			bind = true;
			flags |= MS_BIND | MS_REC;
		}
	}
	bool file = false;
	if (bind) {
		struct stat st;
		if (stat(source, &st) < 0)
			child_fail(errno, "mount %s: stat %s", m->dest, source);
		file = !S_ISDIR(st.st_mode);
	}
	/* The destination as written (nothing is made inside /proc), then as resolved in the rootfs (symlinks). */
	bool checked = bind || (strcmp(fstype, "proc") && strcmp(fstype, "sysfs") && strcmp(fstype, "cgroup2"));
	char dest[4096];
	if (checked) {
		clean_path(m->dest, dest, sizeof dest);
		check_proc_sys(dest, source, m);
	}
	int target = mount_point(root, m->dest, file);
	if (target < 0)
		child_fail(errno, "mount %s: mount point", m->dest);
	if (checked) {
		path_in_root(root, target, dest, sizeof dest);
		check_proc_sys(dest, source, m);
	}
	if (bind) {
		if (mount(source, fd_path(target, path, sizeof path), NULL, MS_BIND | (flags & MS_REC), NULL) < 0)
			child_fail(errno, "mount %s on %s (bind)", source, m->dest);
	} else {
		if (mount(source, fd_path(target, path, sizeof path), fstype, flags & ~(unsigned long)MS_REMOUNT,
			  *m->data ? m->data : NULL) < 0)
			child_fail(errno, "mount %s on %s (%s)", source, m->dest, fstype);
	}
	close(target);
	unsigned long remount = flags & ~(unsigned long)(MS_BIND | MS_REC | MS_REMOUNT);
	if ((bind && remount) || m->propagation) {
		/* Look the destination up again: it is the new mount now. */
		target = open_in_root(root, m->dest, O_PATH);
		if (target < 0)
			child_fail(errno, "mount %s: reopen", m->dest);
		fd_path(target, path, sizeof path);
		if (bind && remount && remount_bind(path, remount) < 0)
			child_fail(errno, "remount %s", m->dest);
		if (m->propagation && mount(NULL, path, NULL, m->propagation, NULL) < 0)
			child_fail(errno, "set the propagation of %s", m->dest);
		close(target);
	}
}

static void make_device(int root, const struct device_spec *d, bool userns)
{
	char name[256];
	int parent = parent_in_root(root, d->path, name, sizeof name);
	if (userns) {
		/* mknod is not allowed in a user namespace: bind the host's node of the same path instead. */
		char path[64];
		int target = mount_point(root, d->path, true);
		if (target < 0)
			child_fail(errno, "device %s", d->path);
		if (mount(d->path, fd_path(target, path, sizeof path), NULL, MS_BIND, NULL) < 0)
			child_fail(errno, "bind mount device %s", d->path);
		close(target);
	} else {
		mode_t type = d->type == 'c' ? S_IFCHR : d->type == 'b' ? S_IFBLK : S_IFIFO;
		if (mknodat(parent, name, type | d->mode, makedev(d->major, d->minor)) == 0) {
			if (fchownat(parent, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
				child_fail(errno, "chown device %s", d->path);
		} else if (errno != EEXIST) {
			child_fail(errno, "mknod %s", d->path);
		}
	}
	close(parent);
}

/* The links the runtime spec asks for in /dev, unless the rootfs has its own. */
static void dev_links(int root)
{
	int dev = open_in_root(root, "/dev", O_PATH | O_DIRECTORY);
	if (dev < 0)
		return;
	static const char *const links[][2] = {
		{ "/proc/self/fd", "fd" },
		{ "/proc/self/fd/0", "stdin" },
		{ "/proc/self/fd/1", "stdout" },
		{ "/proc/self/fd/2", "stderr" },
	};
	for (size_t i = 0; i < ARRAY_LEN(links); i++)
		symlinkat(links[i][0], dev, links[i][1]);
	struct stat st;
	if (fstatat(dev, "pts", &st, 0) == 0 && S_ISDIR(st.st_mode))
		symlinkat("pts/ptmx", dev, "ptmx");
	close(dev);
}

/* pivot_root refuses a new root whose parent mount is shared: make that one mount private (as runc). */
static void make_parent_private(const char *rootfs)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		child_fail(errno, "open /proc/self/mountinfo");
	char line[4096], mountpoint[4096], best[4096] = "/";
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mountpoint) != 1)
			continue;
		size_t n = strlen(mountpoint);
		if (n > strlen(best) && !strncmp(rootfs, mountpoint, n) && (rootfs[n] == '/' || !rootfs[n]))
			strcpy(best, mountpoint);
	}
	fclose(f);
	if (mount(NULL, best, NULL, MS_PRIVATE, NULL) < 0)
		child_fail(errno, "make %s private", best);
}

void rootfs_prepare(const struct ctrspec *s)
{
	unsigned long propagation = s->rootfs_propagation ? s->rootfs_propagation : MS_SLAVE | MS_REC;
	/* In the agent's own mount namespace nothing but the rootfs is touched: its bind holds every mount. */
	if (ctrspec_own_mntns(s) && mount(NULL, "/", NULL, propagation, NULL) < 0)
		child_fail(errno, "set the propagation of /");
	if (ctrspec_own_mntns(s) && (propagation & MS_SHARED))
		make_parent_private(s->rootfs);
	/* Without a mount namespace the agent has made this bind itself, to know what to detach. */
	if (ctrspec_own_mntns(s) && mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		child_fail(errno, "bind mount the rootfs %s", s->rootfs);
	int root = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		child_fail(errno, "open the rootfs %s", s->rootfs);
	for (size_t i = 0; i < s->nmounts; i++)
		mount_one(root, &s->mounts[i]);
	mode_t old = umask(0);
	for (size_t i = 0; i < s->ndevices; i++)
		make_device(root, &s->devices[i], ctrspec_userns(s));
	umask(old);
	dev_links(root);
	close(root);
}

void rootfs_pivot(const char *rootfs)
{
	int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	int newroot = open(rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (oldroot < 0 || newroot < 0)
		child_fail(errno, "pivot_root: open %s", rootfs);
	/* pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then drops it. */
	if (fchdir(newroot) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(errno, "pivot_root %s", rootfs);
	if (fchdir(oldroot) < 0)
		child_fail(errno, "pivot_root: fchdir");
	/* Slave first, so that the unmount does not propagate to the host. */
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		child_fail(errno, "pivot_root: make the old root a slave");
	if (umount2(".", MNT_DETACH) < 0)
		child_fail(errno, "pivot_root: unmount the old root");
	if (chdir("/") < 0)
		child_fail(errno, "chdir /");
	close(oldroot);
	close(newroot);
}

void rootfs_chroot(const char *rootfs)
{
	if (chdir(rootfs) < 0 || chroot(".") < 0)
		child_fail(errno, "chroot %s", rootfs);
	if (chdir("/") < 0)
		child_fail(errno, "chdir /");
}

void rootfs_release(const char *rootfs)
{
	if (umount2(rootfs, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		log_msg("cannot unmount the rootfs %s: %s", rootfs, errtext(errno));
}

static void write_sysctl(const char *setting)
{
	char path[512];
	const char *eq = strchr(setting, '=');
	int n = snprintf(path, sizeof path, "/proc/sys/%.*s", (int)(eq - setting), setting);
	if (n >= (int)sizeof path)
		child_fail(ENAMETOOLONG, "sysctl %s", setting);
	for (char *p = path + 10; *p; p++)
		if (*p == '.')
			*p = '/';
	if (write_file(path, eq + 1) < 0)
		child_fail(errno, "sysctl %.*s", (int)(eq - setting), setting);
}

void rootfs_finish(const struct ctrspec *s)
{
	/* sysctls before the read-only paths: /proc/sys is usually one of them. */
	for (size_t i = 0; i < s->nsysctls; i++)
		write_sysctl(s->sysctls[i]);
	for (size_t i = 0; i < s->nreadonly_paths; i++) {
		const char *p = s->readonly_paths[i];
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			child_fail(errno, "readonly path %s", p);
		}
		if (remount_bind(p, MS_RDONLY) < 0)
			child_fail(errno, "readonly path %s", p);
	}
	for (size_t i = 0; i < s->nmasked; i++) {
		const char *p = s->masked[i];
		struct stat st;
		if (stat(p, &st) < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			child_fail(errno, "masked path %s", p);
		}
		int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL)
					     : mount("/dev/null", p, NULL, MS_BIND, NULL);
		if (rc < 0)
			child_fail(errno, "masked path %s", p);
	}
}

void rootfs_make_readonly(void)
{
	if (remount_bind("/", MS_RDONLY) < 0)
		child_fail(errno, "make the rootfs read-only");
}
