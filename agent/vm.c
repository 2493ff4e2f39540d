#define _GNU_SOURCE
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest.h"
#include "log.h"
#include "ports.h"
#include "util.h"

/* A VM nobody has been attached to for this long, with no container in it, is an orphan: its host died. */
#define ORPHAN_MS 5000

bool vm_mode;
static int exit_fd = -1;
static int console_fd = -1;
static uint64_t unattached_since;

static int open_port(const char *name, int flags)
{
	char path[64];
	if (guest_find_port(name, path, sizeof path) < 0)
		return -1;
	return open(path, flags | O_CLOEXEC);
}

int vm_init(void)
{
	vm_mode = true;
	/*
	 * The initramfs is the rootfs mount, which pivot_root cannot leave (it has no parent): make a bind mount
	 * of it our root, as switch_root does, so that containers have a root with a parent to pivot from.
	 */
	if ((mkdir("/.root", 0700) < 0 && errno != EEXIST) || mount("/", "/.root", NULL, MS_BIND, NULL) < 0 ||
	    chdir("/.root") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) {
		dprintf(2, "runbox-agent: cannot move the initramfs onto a mount of its own: %s\n", errtext(errno));
		return -1;
	}
	if (guest_init() < 0)
		return -1;
	console_fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	static const struct {
		const char *name;
		int flags;
	} stdio_ports[3] = { { "stdin", O_RDONLY }, { "stdout", O_WRONLY }, { "stderr", O_WRONLY } };
	for (int i = 0; i < 3; i++) {
		int fd = open_port(stdio_ports[i].name, stdio_ports[i].flags);
		if (fd < 0)
			fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(fd, i); /* dup2 clears CLOEXEC on the copy: stdio_save_inherited takes it from there */
		if (fd > 2)
			close(fd);
	}
	exit_fd = open_port("exit", O_WRONLY);
	unattached_since = now_mono_ms();
	return 0;
}

int vm_log_fd(void)
{
	return console_fd;
}

int vm_prepare_rootfs(const struct records *rec, char *err, size_t errlen)
{
	const char *image = records_get(rec, "rootfs_image"), *rootfs = records_get(rec, "rootfs");
	if (!image)
		return 0;
	char copy[256], *f[2];
	snprintf(copy, sizeof copy, "%s", image);
	if (split_fields(copy, '\x1f', f, 2) != 2 || !rootfs || rootfs[0] != '/') {
		snprintf(err, errlen, "rootfs_image %s: expected DEVICE\x1f" "FSTYPE and an absolute rootfs", image);
		return -1;
	}
	if (mkdir_all(rootfs, 0755) < 0 || guest_mount_rootfs(f[0], f[1], rootfs) < 0) {
		snprintf(err, errlen, "mount the rootfs image %s (%s) at %s: %s", f[0], f[1], rootfs, errtext(errno));
		return -1;
	}
	return 0;
}

void vm_init_exited(const struct proc *p)
{
	if (exit_fd < 0 || p->exec_id || p->error)
		return;
	char line[64];
	int n = snprintf(line, sizeof line, "%d %llu\n", p->exit_status, (unsigned long long)p->exited_at);
	if (write_all(exit_fd, line, (size_t)n) < 0)
		log_msg("exit port: %s", errtext(errno));
}

bool vm_done(void)
{
	if (!vm_mode)
		return false;
	if (containers) {
		for (struct container *c = containers; c; c = c->next)
			if (!c->init->exited)
				return false;
		return true;
	}
	if (ports_any_attached()) {
		unattached_since = now_mono_ms();
		return false;
	}
	return now_mono_ms() - unattached_since >= ORPHAN_MS;
}

/* How soon a port that could not be reopened is tried again. */
#define PORT_REOPEN_MS 5

int vm_poll_timeout(void)
{
	if (!vm_mode)
		return -1;
	if (ports_reopen_pending()) {
		ports_poll();
		if (ports_reopen_pending())
			return PORT_REOPEN_MS;
	}
	if (containers || ports_any_attached())
		return -1;
	uint64_t waited = now_mono_ms() - unattached_since;
	return waited >= ORPHAN_MS ? 0 : (int)(ORPHAN_MS - waited) + 1;
}

_Noreturn void vm_power_off(void)
{
	guest_poweroff();
	for (;;)
		pause(); /* pid 1 must never return */
}
