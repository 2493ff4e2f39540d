#define _GNU_SOURCE
#include "guest.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define PORTS_DIR "/sys/class/virtio-ports"
#define SERIAL_DRIVER_DIR "/sys/bus/virtio/drivers/virtio_console"
/* How long the ports may take to appear and be named after the driver was loaded. */
#define PORTS_SETTLE_MS 5000

enum scan { FOUND, ABSENT, UNSETTLED };

/* The port's name as the host set it; false while the host has not named it yet (no name attribute). */
static bool read_port_name(const char *port, char *name, size_t len)
{
	char path[300];
	snprintf(path, sizeof path, PORTS_DIR "/%s/name", port);
	if (read_file(path, name, len) < 0)
		return false;
	name[strcspn(name, "\n")] = '\0';
	return true;
}

/* Whether a virtio-serial device is bound: its ports are on their way even when none is listed yet. */
static bool serial_device_bound(void)
{
	DIR *d = opendir(SERIAL_DRIVER_DIR);
	if (!d)
		return false;
	bool bound = false;
	for (struct dirent *e; !bound && (e = readdir(d));)
		bound = !strncmp(e->d_name, "virtio", 6);
	closedir(d);
	return bound;
}

static enum scan scan_ports(const char *want, char *path, size_t len)
{
	DIR *d = opendir(PORTS_DIR);
	if (!d)
		return serial_device_bound() ? UNSETTLED : ABSENT;
	enum scan result = ABSENT;
	int ports = 0;
	for (struct dirent *e; result != FOUND && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		ports++;
		char name[128];
		if (!read_port_name(e->d_name, name, sizeof name))
			result = UNSETTLED;
		else if (!strcmp(name, want) && snprintf(path, len, "/dev/%s", e->d_name) < (int)len)
			result = FOUND;
	}
	closedir(d);
	if (result == ABSENT && ports == 0 && serial_device_bound())
		result = UNSETTLED;
	return result;
}

/*
 * The host adds and names its ports in messages the guest handles after the driver has loaded: wait while a
 * bound device lists no port yet, or a listed port has no name yet. All ports are added before the first is
 * named, so once every listed port has a name, a name not among them is absent.
 */
int guest_find_port(const char *name, char *path, size_t len)
{
	struct timespec pause = { 0, 1000000 };
	uint64_t deadline = now_mono_ms() + PORTS_SETTLE_MS;
	for (;;) {
		enum scan s = scan_ports(name, path, len);
		if (s == FOUND)
			return 0;
		if (s == ABSENT || now_mono_ms() >= deadline)
			break;
		nanosleep(&pause, NULL);
	}
	errno = ENOENT;
	return -1;
}
