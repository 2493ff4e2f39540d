#define _GNU_SOURCE
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"

struct guest_mount {
	const char *fstype, *target, *options;
	unsigned long flags;
};

#define NODEV_NOSUID (MS_NODEV | MS_NOSUID)

/* In order: each target lies on a mount made before it. */
static const struct guest_mount guest_mounts[] = {
	{ "proc", "/proc", NULL, NODEV_NOSUID | MS_NOEXEC },
	{ "sysfs", "/sys", NULL, NODEV_NOSUID | MS_NOEXEC },
	{ "devtmpfs", "/dev", "mode=0755", MS_NOSUID },
	{ "devpts", "/dev/pts", "mode=0620,ptmxmode=0666,gid=5", MS_NOSUID | MS_NOEXEC },
	{ "tmpfs", "/dev/shm", "mode=1777", NODEV_NOSUID },
	{ "tmpfs", "/run", "mode=0755", NODEV_NOSUID },
	{ "tmpfs", "/tmp", "mode=1777", NODEV_NOSUID },
	{ "tmpfs", "/sys/fs/cgroup", "mode=0755", NODEV_NOSUID | MS_NOEXEC },
};

static int console_error(const char *what, const char *arg, int err)
{
	dprintf(2, "runbox-agent: guest init: %s %s: %s\n", what, arg, errtext(err));
	return -1;
}

static int mount_one(const char *source, const char *fstype, const char *target, unsigned long flags,
		     const char *options)
{
	if (mkdir(target, 0755) < 0 && errno != EEXIST)
		return console_error("mkdir", target, errno);
	if (mount(source, target, fstype, flags, options) < 0)
		return console_error("mount", target, errno);
	return 0;
}

static int mount_filesystems(void)
{
	for (size_t i = 0; i < ARRAY_LEN(guest_mounts); i++) {
		const struct guest_mount *m = &guest_mounts[i];
		if (mount_one(m->fstype, m->fstype, m->target, m->flags, m->options) < 0)
			return -1;
	}
	/* The cgroup v1 freezer: what the agent pauses and resumes containers with (freezer.h). */
	if (mount_one("freezer", "cgroup", "/sys/fs/cgroup/freezer", NODEV_NOSUID | MS_NOEXEC, "freezer") < 0)
		return -1;
	/* The other v1 hierarchies, where the container's linux.resources are applied (cgroups.h); a controller the
	 * guest kernel lacks (or has as a module not loaded) is left out, and a setting that needs it refused. */
	static const char *const controllers[] = { "cpu",     "cpuacct", "cpuset",  "memory",   "pids",
						   "blkio",   "devices", "hugetlb", "net_cls", "net_prio", "rdma" };
	for (size_t i = 0; i < ARRAY_LEN(controllers); i++) {
		char target[64];
		snprintf(target, sizeof target, "/sys/fs/cgroup/%s", controllers[i]);
		if (mkdir(target, 0755) < 0 && errno != EEXIST)
			return console_error("mkdir", target, errno);
		if (mount(controllers[i], target, "cgroup", NODEV_NOSUID | MS_NOEXEC, controllers[i]) < 0)
			rmdir(target);
	}
	return 0;
}

static int load_module(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return console_error("open the module", name, errno);
	int rc = (int)syscall(SYS_finit_module, fd, "", 0);
	int err = errno;
	close(fd);
	if (rc < 0 && err != EEXIST)
		return console_error("load the module", name, err);
	return 0;
}

/* GUEST_MODULE_ORDER: one file name a line, each after the modules it depends on. */
static int load_modules(void)
{
	FILE *order = fopen(GUEST_MODULE_ORDER, "re");
	if (!order) {
		if (errno == ENOENT)
			return 0; /* a kernel with everything built in */
		return console_error("open", GUEST_MODULE_ORDER, errno);
	}
	int dir_fd = open(GUEST_MODULE_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		fclose(order);
		return console_error("open", GUEST_MODULE_DIR, errno);
	}
	char line[256];
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof line, order)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0])
			rc = load_module(dir_fd, line);
	}
	close(dir_fd);
	fclose(order);
	return rc;
}

int guest_init(void)
{
	umask(022);
	return mount_filesystems() < 0 || load_modules() < 0 ? -1 : 0;
}

void guest_poweroff(void)
{
	/* What was written to the serial console sits in the tty's buffer: power-off would drop it. */
	tcdrain(STDOUT_FILENO);
	tcdrain(STDERR_FILENO);
	sync();
	reboot(RB_POWER_OFF);
	/* No power-off device: rebooting ends QEMU just as well, since it runs with -no-reboot. */
	reboot(RB_AUTOBOOT);
}
