#define _GNU_SOURCE
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"
#include "log.h"
#include "ports.h"
#include "stdio.h"
#include "util.h"

/* A VM nobody has been attached to for this long, with no container in it, is an orphan: its host died. */
#define ORPHAN_MS 5000

bool vm_mode;
static int exit_fd = -1;
static int console_fd = -1;
static uint64_t unattached_since;

static int hex_value(char c);

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

/*
 * `guest_dir=PATH`: a directory (mode 1777) in the guest's /run, which a pod's containers bind (its /dev/shm).
 * `guest_file=PATH␟HEX`: a host file's content (CRI's /etc/hosts, resolv.conf, hostname) written at a guest path.
 */
static int write_guest_files(const struct records *rec, char *err, size_t errlen)
{
	for (size_t i = 0; i < rec->n; i++) {
		if (!strcmp(rec->v[i].key, "guest_dir")) {
			const char *dir = rec->v[i].value;
			if (dir[0] != '/' || mkdir_all(dir, 0755) < 0 || chmod(dir, 01777) < 0) {
				snprintf(err, errlen, "guest_dir %s: %s", dir, dir[0] == '/' ? errtext(errno) : "not absolute");
				return -1;
			}
			continue;
		}
		if (strcmp(rec->v[i].key, "guest_file"))
			continue;
		const char *value = rec->v[i].value, *sep = strchr(value, '\x1f');
		char path[256];
		if (!sep || value[0] != '/' || (size_t)(sep - value) >= sizeof path || strlen(sep + 1) % 2) {
			snprintf(err, errlen, "guest_file: expected an absolute PATH\x1f" "HEX");
			errno = EINVAL;
			return -1;
		}
		memcpy(path, value, (size_t)(sep - value));
		path[sep - value] = '\0';
		char *slash = strrchr(path, '/');
		*slash = '\0';
		int rc = slash == path ? 0 : mkdir_all(path, 0755);
		*slash = '/';
		int fd = rc < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			snprintf(err, errlen, "guest_file %s: %s", path, errtext(errno));
			return -1;
		}
		unsigned char chunk[4096];
		size_t n = 0;
		rc = 0;
		for (const char *hex = sep + 1; *hex && rc == 0; hex += 2) {
			int hi = hex_value(hex[0]), lo = hex_value(hex[1]);
			if (hi < 0 || lo < 0) {
				errno = EINVAL;
				rc = -1;
			} else if (n == sizeof chunk) {
				rc = write_all(fd, chunk, n);
				n = 0;
			}
			chunk[n++] = (unsigned char)(hi << 4 | lo);
		}
		if (rc == 0)
			rc = write_all(fd, chunk, n);
		int saved = errno;
		close(fd);
		if (rc < 0) {
			snprintf(err, errlen, "guest_file %s: %s", path, saved == EINVAL ? "not hex" : errtext(saved));
			errno = saved;
			return -1;
		}
	}
	return 0;
}

/* Where `volumes=TAG` mounts the host's 9p export of a pod's volumes, once (the host binds each volume into it). */
#define GUEST_VOLUMES "/run/runbox-volumes"

static int mount_volumes(const struct records *rec, char *err, size_t errlen)
{
	static bool mounted;
	const char *tag = records_get(rec, "volumes");
	if (!tag || mounted)
		return 0;
	/* cache=none: what either side writes is seen by the other at once. */
	if (mkdir_all(GUEST_VOLUMES, 0700) < 0 ||
	    mount(tag, GUEST_VOLUMES, "9p", MS_NOSUID | MS_NODEV, "trans=virtio,version=9p2000.L,msize=262144,cache=none") < 0) {
		snprintf(err, errlen, "mount the host's volumes (9p %s) at " GUEST_VOLUMES ": %s", tag, errtext(errno));
		return -1;
	}
	mounted = true;
	return 0;
}

int vm_prepare_rootfs(const struct records *rec, char *err, size_t errlen)
{
	if (write_guest_files(rec, err, errlen) < 0 || guest_net_configure(rec, err, errlen) < 0 ||
	    mount_volumes(rec, err, errlen) < 0)
		return -1;
	const char *image = records_get(rec, "rootfs_image"), *rootfs = records_get(rec, "rootfs");
	if (!image)
		return 0;
	char copy[256], *f[4];
	snprintf(copy, sizeof copy, "%s", image);
	size_t n = split_fields(copy, '\x1f', f, 4);
	uint64_t offset = 0, size = 0;
	if ((n != 2 && n != 4) || (n == 4 && (!parse_u64(f[2], &offset) || !parse_u64(f[3], &size))) || !rootfs ||
	    rootfs[0] != '/') {
		snprintf(err, errlen, "rootfs_image %s: expected DEVICE\x1f" "FSTYPE[\x1f" "OFFSET\x1f" "SIZE] and an absolute rootfs", image);
		errno = EINVAL;
		return -1;
	}
	/* An image further into the disk (a pod's later container) is mounted through a loop device over its range,
	 * held open until it is mounted (it goes with the last of both). */
	char loop[32];
	const char *device = f[0];
	int loop_fd = -1;
	if (n == 4) {
		loop_fd = guest_loop_attach(f[0], offset, size, loop, sizeof loop);
		if (loop_fd < 0) {
			snprintf(err, errlen, "attach a loop device to %s at %llu: %s", f[0], (unsigned long long)offset, errtext(errno));
			return -1;
		}
		device = loop;
	}
	/* An image with a dm-verity hash tree (an enclave's: its root hash is in the measured request) is mounted through
	 * a verity device, which checks every block the guest reads. */
	const char *verity = records_get(rec, "rootfs_verity");
	char verity_device[64];
	if (verity) {
		if (guest_verity_device(device, verity, verity_device, sizeof verity_device) < 0) {
			int saved = errno;
			snprintf(err, errlen, "rootfs_verity %s over %s: %s", verity, device, errtext(saved));
			if (loop_fd >= 0)
				close(loop_fd);
			errno = saved;
			return -1;
		}
		device = verity_device;
	}
	int rc = mkdir_all(rootfs, 0755) < 0 || guest_mount_rootfs(device, f[1], rootfs) < 0 ? -1 : 0;
	int saved = errno;
	if (loop_fd >= 0)
		close(loop_fd);
	if (rc < 0) {
		snprintf(err, errlen, "mount the rootfs image %s (%s) at %s: %s", device, f[1], rootfs, errtext(saved));
		errno = saved;
		return -1;
	}
	return 0;
}

/* The most entropy a vm_restored brings; all of it is credited (it comes from the host's own CSPRNG). */
#define MAX_ENTROPY_BYTES 256

static int hex_value(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Mixes the host's bytes into the input pool and makes every CRNG rekey from it. */
static int reseed_random(const char *hex, char *err, size_t errlen)
{
	size_t len = strlen(hex);
	if (len == 0 || len % 2 || len / 2 > MAX_ENTROPY_BYTES) {
		snprintf(err, errlen, "entropy: expected 1 to %d bytes in hex", MAX_ENTROPY_BYTES);
		return -1;
	}
	struct {
		struct rand_pool_info info;
		unsigned char bytes[MAX_ENTROPY_BYTES];
	} pool = { .info = { .entropy_count = (int)(len / 2 * 8), .buf_size = (int)(len / 2) } };
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			snprintf(err, errlen, "entropy: not hex");
			return -1;
		}
		pool.bytes[i] = (unsigned char)(hi << 4 | lo);
	}
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	int rc = fd < 0 ? -1 : ioctl(fd, RNDADDENTROPY, &pool.info);
	if (rc == 0)
		rc = ioctl(fd, RNDRESEEDCRNG);
	int saved = errno;
	if (fd >= 0)
		close(fd);
	explicit_bzero(&pool, sizeof pool);
	if (rc < 0) {
		snprintf(err, errlen, "reseed the guest's random number generator: %s", errtext(saved));
		return -1;
	}
	return 0;
}

int vm_restored(const struct records *rec, char *err, size_t errlen)
{
	uint64_t realtime_ns;
	const char *entropy = records_get(rec, "entropy");
	if (!parse_u64(records_get(rec, "realtime_ns"), &realtime_ns) || !entropy) {
		snprintf(err, errlen, "vm_restored needs realtime_ns and entropy");
		return -1;
	}
	const struct timespec now = { (time_t)(realtime_ns / 1000000000), (long)(realtime_ns % 1000000000) };
	if (clock_settime(CLOCK_REALTIME, &now) < 0) {
		snprintf(err, errlen, "set the guest's clock: %s", errtext(errno));
		return -1;
	}
	if (reseed_random(entropy, err, errlen) < 0)
		return -1;
	static const char *const streams[3] = { "stdin", "stdout", "stderr" };
	for (size_t i = 0; i < rec->n; i++) {
		if (strcmp(rec->v[i].key, "stdio_absent"))
			continue;
		int fd = -1;
		for (int s = 0; s < 3; s++)
			if (!strcmp(rec->v[i].value, streams[s]))
				fd = s;
		if (fd < 0) {
			snprintf(err, errlen, "stdio_absent %s: expected stdin, stdout or stderr", rec->v[i].value);
			return -1;
		}
		if (stdio_make_inherited_null(fd) < 0) {
			snprintf(err, errlen, "make the inherited %s /dev/null: %s", streams[fd], errtext(errno));
			return -1;
		}
	}
	return 0;
}

void vm_init_exited(const struct proc *p)
{
	if (exit_fd < 0 || p->exec_id || p->error || p->ctr->transient)
		return;
	char line[320];
	int n = snprintf(line, sizeof line, "%d %llu %s\n", p->exit_status, (unsigned long long)p->exited_at, p->ctr->id);
	if (write_all(exit_fd, line, (size_t)n) < 0)
		log_msg("exit port: %s", errtext(errno));
}

bool vm_done(void)
{
	if (!vm_mode)
		return false;
	/* Once every container's init has ended; a transient container (a warm-up) does not count. */
	bool any = false;
	for (struct container *c = containers; c; c = c->next) {
		if (c->transient)
			continue;
		if (!c->init->exited)
			return false;
		any = true;
	}
	if (any)
		return true;
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
