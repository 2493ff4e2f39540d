#define _GNU_SOURCE
#include "guest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "util.h"

/*
 * A pod's network in its VM: the guest's one NIC (virtio-net, whose host end is a tap in the pod's network
 * namespace, traffic redirected to and from CNI's veth) takes the veth's MAC (a CNI may pin a neighbour entry
 * to it), MTU, IPv4 address and routes, by the classic interface ioctls. A VM restored from a template wakes
 * with the template's MAC: it is set here whatever it was.
 */

static int set_flags(int sock, const char *name, short on, short off)
{
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags = (short)((ifr.ifr_flags | on) & ~off);
	return ioctl(sock, SIOCSIFFLAGS, &ifr);
}

/* The first interface that is not the loopback: the VM's only NIC. */
static int find_nic(char *name, size_t len)
{
	struct if_nameindex *names = if_nameindex();
	if (!names)
		return -1;
	int rc = -1;
	for (struct if_nameindex *n = names; n->if_index; n++) {
		if (strcmp(n->if_name, "lo")) {
			snprintf(name, len, "%s", n->if_name);
			rc = 0;
			break;
		}
	}
	if_freenameindex(names);
	if (rc < 0)
		errno = ENODEV;
	return rc;
}

static int parse_prefix(const char *text, struct in_addr *addr, struct in_addr *mask)
{
	char copy[64];
	snprintf(copy, sizeof copy, "%s", text);
	char *slash = strchr(copy, '/');
	long bits = 32;
	if (slash) {
		*slash = '\0';
		char *end;
		bits = strtol(slash + 1, &end, 10);
		if (*end || bits < 0 || bits > 32)
			return -1;
	}
	if (!strcmp(copy, "default")) {
		addr->s_addr = 0;
		bits = 0;
	} else if (inet_pton(AF_INET, copy, addr) != 1) {
		return -1;
	}
	mask->s_addr = bits ? htonl(0xffffffffu << (32 - bits)) : 0;
	return 0;
}

static void set_sockaddr(struct sockaddr *sa, struct in_addr addr)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr = addr };
	memcpy(sa, &in, sizeof in);
}

static int configure(int sock, const struct records *rec, const char *link, char *err, size_t errlen)
{
	char nic[IF_NAMESIZE], copy[64], *f[2];
	if (find_nic(nic, sizeof nic) < 0) {
		snprintf(err, errlen, "the VM has no network interface: %s", errtext(errno));
		return -1;
	}
	snprintf(copy, sizeof copy, "%s", link);
	unsigned mac[6];
	if (split_fields(copy, '\x1f', f, 2) != 2 ||
	    sscanf(f[0], "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6) {
		snprintf(err, errlen, "net_link %s: expected MAC\x1f" "MTU", link);
		errno = EINVAL;
		return -1;
	}
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", nic);
	ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
	for (int i = 0; i < 6; i++)
		ifr.ifr_hwaddr.sa_data[i] = (char)mac[i];
	/* virtio-net takes a new MAC while up (a pooled VM's NIC is, since its warm-up: net_up); taking it down
	 * instead would free its receive buffers, and bringing it up fill them again, some 30 ms under TCG. */
	if (ioctl(sock, SIOCSIFHWADDR, &ifr) < 0 &&
	    (errno != EBUSY || set_flags(sock, nic, 0, IFF_UP) < 0 || ioctl(sock, SIOCSIFHWADDR, &ifr) < 0)) {
		snprintf(err, errlen, "set the MAC of %s: %s", nic, errtext(errno));
		return -1;
	}
	ifr.ifr_mtu = atoi(f[1]);
	if (ifr.ifr_mtu > 0 && ioctl(sock, SIOCSIFMTU, &ifr) < 0) {
		snprintf(err, errlen, "set the MTU of %s to %s: %s", nic, f[1], errtext(errno));
		return -1;
	}
	if (set_flags(sock, "lo", IFF_UP, 0) < 0 || set_flags(sock, nic, IFF_UP, 0) < 0) {
		snprintf(err, errlen, "bring %s up: %s", nic, errtext(errno));
		return -1;
	}
	for (size_t i = 0; i < rec->n; i++) {
		struct in_addr addr, mask;
		if (!strcmp(rec->v[i].key, "net_addr")) {
			if (parse_prefix(rec->v[i].value, &addr, &mask) < 0) {
				snprintf(err, errlen, "net_addr %s: expected ADDRESS/PREFIX", rec->v[i].value);
				errno = EINVAL;
				return -1;
			}
			struct ifreq a = { 0 };
			snprintf(a.ifr_name, sizeof a.ifr_name, "%s", nic);
			set_sockaddr(&a.ifr_addr, addr);
			int rc = ioctl(sock, SIOCSIFADDR, &a);
			set_sockaddr(&a.ifr_netmask, mask);
			if (rc < 0 || ioctl(sock, SIOCSIFNETMASK, &a) < 0) {
				snprintf(err, errlen, "give %s the address %s: %s", nic, rec->v[i].value, errtext(errno));
				return -1;
			}
		}
	}
	for (size_t i = 0; i < rec->n; i++) {
		if (strcmp(rec->v[i].key, "net_route"))
			continue;
		char route[96], *r[2];
		snprintf(route, sizeof route, "%s", rec->v[i].value);
		size_t n = split_fields(route, '\x1f', r, 2);
		struct in_addr dst, mask, gateway = { 0 };
		if (parse_prefix(r[0], &dst, &mask) < 0 || (n == 2 && r[1][0] && inet_pton(AF_INET, r[1], &gateway) != 1)) {
			snprintf(err, errlen, "net_route %s: expected DESTINATION/PREFIX[\x1f" "GATEWAY]", rec->v[i].value);
			errno = EINVAL;
			return -1;
		}
		struct rtentry rt = { 0 };
		set_sockaddr(&rt.rt_dst, dst);
		set_sockaddr(&rt.rt_genmask, mask);
		set_sockaddr(&rt.rt_gateway, gateway);
		rt.rt_flags = RTF_UP | (gateway.s_addr ? RTF_GATEWAY : 0);
		rt.rt_dev = nic;
		/* The address's own subnet route is there already. */
		if (ioctl(sock, SIOCADDRT, &rt) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "add the route %s on %s: %s", rec->v[i].value, nic, errtext(errno));
			return -1;
		}
	}
	return 0;
}

/* The loopback and the NIC up, as they are (a pooled VM's warm-up: the pod's configure then finds the NIC up). */
static int bring_up(int sock, char *err, size_t errlen)
{
	char nic[IF_NAMESIZE];
	if (find_nic(nic, sizeof nic) < 0 || set_flags(sock, "lo", IFF_UP, 0) < 0 || set_flags(sock, nic, IFF_UP, 0) < 0) {
		snprintf(err, errlen, "bring the VM's network interface up: %s", errtext(errno));
		return -1;
	}
	return 0;
}

int guest_net_configure(const struct records *rec, char *err, size_t errlen)
{
	const char *link = records_get(rec, "net_link"), *up = records_get(rec, "net_up");
	if (!link && !(up && !strcmp(up, "1")))
		return 0;
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		snprintf(err, errlen, "a socket to configure the network: %s", errtext(errno));
		return -1;
	}
	int rc = link ? configure(sock, rec, link, err, errlen) : bring_up(sock, err, errlen);
	int saved = errno;
	close(sock);
	errno = saved;
	return rc;
}
