#define _GNU_SOURCE
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

/*
 * A pod's later containers have their rootfs images in the one VM disk, each at its own offset (the host
 * appends them while the VM runs: microvm has no hot-plug). A read-only loop device over that range, with
 * the disk's cache dropped first and direct I/O, so that nothing the guest cached of the disk before the image
 * was written can be read back as the image, and autoclear so that it goes once neither the returned fd nor a
 * mount holds it.
 */
int guest_loop_attach(const char *device, uint64_t offset, uint64_t size, char *loop, size_t len)
{
	int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (control < 0)
		return -1;
	int backing = open(device, O_RDONLY | O_CLOEXEC);
	if (backing < 0) {
		int err = errno;
		close(control);
		errno = err;
		return -1;
	}
	/* What the guest read of the disk before this image was written there (readahead past the last image's end)
	 * must not be read back as the image: drop the disk's cache (direct I/O alone is not always taken). */
	ioctl(backing, BLKFLSBUF, 0);
	int rc = -1, err = 0;
	for (int tries = 0; tries < 16; tries++) {
		int n = ioctl(control, LOOP_CTL_GET_FREE);
		if (n < 0) {
			err = errno;
			break;
		}
		snprintf(loop, len, "/dev/loop%d", n);
		int fd = open(loop, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
			break;
		}
		struct loop_config config = { .fd = (unsigned)backing, .block_size = 0 };
		config.info.lo_offset = offset;
		config.info.lo_sizelimit = size;
		config.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
		if (ioctl(fd, LOOP_CONFIGURE, &config) == 0) {
			rc = fd;
			break;
		}
		err = errno;
		close(fd);
		if (err != EBUSY) /* another attach took it meanwhile: ask again */
			break;
	}
	close(backing);
	close(control);
	if (rc < 0)
		errno = err;
	return rc;
}
