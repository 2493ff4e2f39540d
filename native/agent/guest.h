/*
 * The guest side of a microVM: what the agent does as the VM's init (pid 1) before it serves anything, and the
 * guest devices it finds. The initramfs holds the agent as /init and the kernel modules the VM needs, listed
 * in load order in GUEST_MODULE_ORDER (scripts/guest/build-initramfs.sh writes both).
 * Every function reports failure on the console (fd 2) or with errno, as its comment says.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define GUEST_MODULE_DIR "/lib/modules/runbox"
#define GUEST_MODULE_ORDER GUEST_MODULE_DIR "/order"

/* As pid 1: mounts /proc /sys /dev (devtmpfs) /dev/pts /dev/shm /run /tmp and the freezer cgroup, loads the
 * initramfs's modules in order. Returns 0, or -1 after printing why on the console. */
int guest_init(void);
/* sync, then power the VM off (QEMU exits; run with -no-reboot); returns only if the kernel refused. */
void guest_poweroff(void);
/* The /dev/vportNpM whose virtio-serial port name (set by the host) is NAME: 0, or -1 with errno ENOENT. */
int guest_find_port(const char *name, char *path, size_t len);
/* Mounts DEVICE (a read-only block device, e.g. /dev/vda) and a writable overlay over it (upper and work dirs
 * on a tmpfs) at TARGET: 0, or -1 with errno. */
int guest_mount_rootfs(const char *device, const char *fstype, const char *target);
/* A read-only loop device (its path into loop) over SIZE bytes of DEVICE from OFFSET, released once the
 * returned fd is closed and its last mount gone (guest-loop.c): that fd, or -1 with errno. */
struct records;
/* A create's `net_link=MAC␟MTU`, `net_addr=ADDRESS/PREFIX` and `net_route=DESTINATION/PREFIX[␟GATEWAY]` records
 * applied to the VM's NIC (guest-net.c); nothing without net_link. 0, or -1 with err and errno. */
int guest_net_configure(const struct records *rec, char *err, size_t errlen);
int guest_loop_attach(const char *device, uint64_t offset, uint64_t size, char *loop, size_t len);
