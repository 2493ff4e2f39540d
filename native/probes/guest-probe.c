/*
 * A test init (test/guest-boot.test.ts, and the figures in docs/microvm.md, "The guest") that exercises agent/guest.h in a real microVM: guest_init, the port
 * lookup, and (when the kernel command line names an image with image_fstype=…) guest_mount_rootfs, then lists
 * what it sees. Status lines go to the console ("probe: …"); the rootfs listing goes to the port named
 * "listing", one line per entry, fields tab-separated:
 *   path mode(octal) uid gid nlink ino rdev(major:minor) size mtime content-hash symlink-target
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../agent/guest.h"
#include "../common/util.h"

#define ROOT "/mnt/rootfs"

static FILE *listing;

/* Microseconds since the guest kernel started. */
static long long boot_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	dprintf(1, "probe: ");
	vdprintf(1, fmt, ap);
	dprintf(1, "\n");
	va_end(ap);
}

static uint32_t fnv1a(const char *path)
{
	uint32_t h = 2166136261u;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	unsigned char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 16777619u;
	close(fd);
	return h;
}

static int list_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)type, (void)ftw;
	char target[4096] = "";
	if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlink(path, target, sizeof target - 1);
		target[n > 0 ? n : 0] = '\0';
	}
	const char *rel = path + strlen(ROOT);
	fprintf(listing, "%s\t%o\t%u\t%u\t%lu\t%lu\t%u:%u\t%lld\t%lld\t%08x\t%s\n", rel[0] ? rel : "/",
		(unsigned)st->st_mode, st->st_uid, st->st_gid, (unsigned long)st->st_nlink, (unsigned long)st->st_ino,
		major(st->st_rdev), minor(st->st_rdev), (long long)st->st_size, (long long)st->st_mtime,
		S_ISREG(st->st_mode) ? fnv1a(path) : 0, target);
	return 0;
}

static int read_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)type, (void)ftw;
	static char buf[65536];
	int fd = S_ISREG(st->st_mode) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	while (fd >= 0 && read(fd, buf, sizeof buf) > 0)
		;
	if (fd >= 0)
		close(fd);
	return 0;
}

static void probe_modules(void)
{
	char line[256], names[1024] = "";
	FILE *f = fopen("/proc/modules", "re");
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, " ")] = '\0';
		strncat(names, " ", sizeof names - strlen(names) - 1);
		strncat(names, line, sizeof names - strlen(names) - 1);
	}
	if (f)
		fclose(f);
	say("modules%s", names);
}

static void probe_writes(void)
{
	int fd = open(ROOT "/written-in-guest", O_WRONLY | O_CREAT | O_EXCL, 0644);
	say("write in the overlay: %s", fd >= 0 && write(fd, "x", 1) == 1 ? "ok" : errtext(errno));
	if (fd >= 0)
		close(fd);
	say("remove from the overlay: %s", unlink(ROOT "/hardlink-a") == 0 ? "ok" : errtext(errno));
}

static void probe_rootfs(const char *device, const char *fstype)
{
	char port[64];
	if (guest_find_port("listing", port, sizeof port) < 0 || !(listing = fopen(port, "we"))) {
		say("no listing port: %s", errtext(errno));
		return;
	}
	long long start = boot_us();
	if (guest_mount_rootfs(device, fstype, ROOT) < 0) {
		say("mount %s: %s", fstype, errtext(errno));
		return;
	}
	long long mounted = boot_us();
	say("mounted %s (%s) at " ROOT, device, fstype);
	nftw(ROOT, read_entry, 16, FTW_PHYS);
	say("timing: mount %lld us, stat and read everything (cold) %lld us", mounted - start, boot_us() - mounted);
	nftw(ROOT, list_entry, 16, FTW_PHYS);
	fclose(listing);
	probe_writes();
	/* The image and the upper tmpfs are the overlay's own (private clones): nothing else reaches them. */
	say("layer mounts detached: %s", access("/run/runbox-rootfs/0", F_OK) < 0 ? errtext(errno) : "no");
}

int main(void)
{
	long long start = boot_us();
	if (guest_init() < 0) {
		say("guest_init failed");
		guest_poweroff();
	}
	say("timing: init started %lld us after the kernel, guest_init took %lld us", start, boot_us() - start);
	struct utsname u;
	uname(&u);
	say("pid %d, kernel %s", getpid(), u.release);
	probe_modules();
	char path[64];
	say("port hello: %s", guest_find_port("hello", path, sizeof path) == 0 ? path : errtext(errno));
	say("port nonexistent: %s", guest_find_port("nonexistent", path, sizeof path) == 0 ? path : errtext(errno));
	int fd;
	if (guest_find_port("hello", path, sizeof path) == 0 && (fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
		(void)!write(fd, "hello from the guest\n", 21);
		close(fd);
	}
	const char *fstype = getenv("image_fstype"), *device = getenv("image_device");
	if (fstype)
		probe_rootfs(device ? device : "/dev/vda", fstype);
	say("done");
	guest_poweroff();
	return 1;
}
