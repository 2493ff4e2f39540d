/* The enclave rootfs's dm-verity device: every block the guest reads from the rootfs image is checked against
 * the root hash its create request carried (measured into PCR 8 with the rest of the initdata). */
#define _GNU_SOURCE
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util.h"

#define VERITY_NAME "runbox-rootfs"
#define BLOCK 4096

/* One device-mapper ioctl on VERITY_NAME, with `params` (a target line) after a dm_target_spec when given. */
static int dm_call(int control, unsigned long request, uint32_t flags, const char *params, uint64_t sectors, struct dm_ioctl *out)
{
	union {
		struct dm_ioctl io;
		char bytes[sizeof(struct dm_ioctl) + sizeof(struct dm_target_spec) + 512];
	} buf;
	memset(&buf, 0, sizeof buf);
	struct dm_ioctl *io = &buf.io;
	io->version[0] = DM_VERSION_MAJOR;
	io->data_size = sizeof buf;
	io->data_start = sizeof(struct dm_ioctl);
	io->flags = flags;
	snprintf(io->name, sizeof io->name, "%s", VERITY_NAME);
	if (params) {
		struct dm_target_spec *spec = (struct dm_target_spec *)(buf.bytes + sizeof(struct dm_ioctl));
		spec->sector_start = 0;
		spec->length = sectors;
		snprintf(spec->target_type, sizeof spec->target_type, "verity");
		size_t room = sizeof buf - sizeof(struct dm_ioctl) - sizeof(struct dm_target_spec);
		if (strlen(params) >= room) {
			errno = E2BIG;
			return -1;
		}
		strcpy((char *)(spec + 1), params);
		io->target_count = 1;
	}
	if (ioctl(control, request, io) < 0)
		return -1;
	if (out)
		*out = *io;
	return 0;
}

int guest_verity_device(const char *device, const char *spec, char *path, size_t len)
{
	char copy[256], *f[3];
	snprintf(copy, sizeof copy, "%s", spec);
	unsigned long long data_blocks, hash_start;
	if (split_fields(copy, '\x1f', f, 3) != 3 || strlen(f[0]) != 64 || strspn(f[0], "0123456789abcdef") != 64 ||
	    sscanf(f[1], "%llu", &data_blocks) != 1 || sscanf(f[2], "%llu", &hash_start) != 1 || hash_start < data_blocks) {
		errno = EINVAL;
		return -1;
	}
	int control = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (control < 0)
		return -1;
	/* Format 1, the data and its hash tree on one device (the tree after the data), no salt. */
	char params[384];
	snprintf(params, sizeof params, "1 %s %s %d %d %llu %llu sha256 %s -", device, device, BLOCK, BLOCK, data_blocks, hash_start, f[0]);
	struct dm_ioctl made;
	int rc = dm_call(control, DM_DEV_CREATE, 0, NULL, 0, NULL);
	if (rc == 0 && (dm_call(control, DM_TABLE_LOAD, DM_READONLY_FLAG, params, data_blocks * (BLOCK / 512), NULL) < 0 ||
			dm_call(control, DM_DEV_SUSPEND, 0, NULL, 0, &made) < 0)) {
		int err = errno;
		dm_call(control, DM_DEV_REMOVE, 0, NULL, 0, NULL);
		errno = err;
		rc = -1;
	}
	int err = errno;
	close(control);
	errno = err;
	if (rc < 0)
		return -1;
	/* devtmpfs names a mapped device dm-MINOR. */
	snprintf(path, len, "/dev/dm-%u", minor((dev_t)made.dev));
	return 0;
}
