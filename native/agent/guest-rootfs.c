#define _GNU_SOURCE
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Where each image's read-only mount and its tmpfs (upper and work dirs) live, out of the containers' sight. */
#define LAYERS_DIR "/run/runbox-rootfs"

static int make_dir(const char *path)
{
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* A fresh LAYERS_DIR/N for this image. */
static int make_layers_dir(char *dir, size_t len)
{
	static unsigned next;
	if (mkdir_all(LAYERS_DIR, 0700) < 0)
		return -1;
	for (;;) {
		snprintf(dir, len, LAYERS_DIR "/%u", next++);
		if (mkdir(dir, 0700) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
}

static void unmount_keeping_errno(const char *path)
{
	int err = errno;
	umount2(path, MNT_DETACH);
	errno = err;
}

/* The overlay's upper dir, whose root becomes the merged root (so it takes LOWER's mode, owner and times),
 * and its work dir. */
static int make_upper(const char *lower, const char *upper, const char *work)
{
	struct stat root;
	if (stat(lower, &root) < 0 || mkdir(upper, 0700) < 0 || chown(upper, root.st_uid, root.st_gid) < 0 ||
	    chmod(upper, root.st_mode & 07777) < 0)
		return -1;
	const struct timespec times[2] = { root.st_atim, root.st_mtim };
	if (utimensat(AT_FDCWD, upper, times, 0) < 0)
		return -1;
	return make_dir(work);
}

static int mount_overlay(const char *lower, const char *upper, const char *work, const char *target)
{
	char options[512];
	if (snprintf(options, sizeof options, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work) >=
	    (int)sizeof options) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdir_all(target, 0755) < 0)
		return -1;
	return mount("overlay", target, "overlay", 0, options);
}

int guest_mount_rootfs(const char *device, const char *fstype, const char *target)
{
	char dir[64], lower[80], rw[80], upper[96], work[96];
	if (make_layers_dir(dir, sizeof dir) < 0)
		return -1;
	snprintf(lower, sizeof lower, "%s/lower", dir);
	snprintf(rw, sizeof rw, "%s/rw", dir);
	snprintf(upper, sizeof upper, "%s/upper", rw);
	snprintf(work, sizeof work, "%s/work", rw);
	if (make_dir(lower) < 0 || make_dir(rw) < 0 || mount(device, lower, fstype, MS_RDONLY, NULL) < 0)
		return -1;
	if (mount("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0) {
		unmount_keeping_errno(lower);
		return -1;
	}
	if (make_upper(lower, upper, work) < 0 || mount_overlay(lower, upper, work, target) < 0) {
		unmount_keeping_errno(rw);
		unmount_keeping_errno(lower);
		return -1;
	}
	/* overlayfs holds private clones of its layers' mounts: the image and the tmpfs now live as long as the
	 * overlay, and go (the image's loop device with them) when the container's rootfs is unmounted. */
	umount2(rw, MNT_DETACH);
	umount2(lower, MNT_DETACH);
	rmdir(rw);
	rmdir(lower);
	rmdir(dir);
	return 0;
}
