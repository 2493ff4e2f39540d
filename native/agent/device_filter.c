#define _GNU_SOURCE
#include "device_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

/* The license the program declares (the kernel's MODULE_LICENSE strings): runc's, whose generator this follows. */
#define LICENSE "Apache"
#define ALL_ACCESS (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)
#define WILDCARD -1

struct exception {
	int type; /* BPF_DEVCG_DEV_CHAR or _BLOCK */
	int64_t major, minor; /* WILDCARD: any */
	int access;	      /* BPF_DEVCG_ACC_* bits */
};

struct program {
	struct bpf_insn *insns;
	size_t n;
};

static void emit(struct program *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	p->insns = xrealloc(p->insns, (p->n + 1) * sizeof *p->insns);
	p->insns[p->n++] = (struct bpf_insn){ .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
}

static int bpf(int cmd, union bpf_attr *attr)
{
	return (int)syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

static int fail(char *err, size_t errlen, int code, const char *fmt, const char *what)
{
	snprintf(err, errlen, fmt, what);
	errno = code;
	return -1;
}

static int parse_number(const char *text, int64_t *out)
{
	uint64_t n;
	if (!strcmp(text, "*")) {
		*out = WILDCARD;
		return 0;
	}
	if (!parse_u64(text, &n) || n > INT32_MAX) /* a device number fits in 32 bits, and in the jump's imm */
		return -1;
	*out = (int64_t)n;
	return 0;
}

static int parse_exception(const char *value, struct exception *e)
{
	char text[128], *f[4];
	snprintf(text, sizeof text, "%s", value);
	if (split_fields(text, UNIT_SEP, f, 4) != 4 || parse_number(f[1], &e->major) < 0 ||
	    parse_number(f[2], &e->minor) < 0 || !*f[3])
		return -1;
	if (!strcmp(f[0], "c"))
		e->type = BPF_DEVCG_DEV_CHAR;
	else if (!strcmp(f[0], "b"))
		e->type = BPF_DEVCG_DEV_BLOCK;
	else
		return -1;
	e->access = 0;
	for (const char *a = f[3]; *a; a++) {
		int bit = *a == 'r' ? BPF_DEVCG_ACC_READ : *a == 'w' ? BPF_DEVCG_ACC_WRITE : *a == 'm' ? BPF_DEVCG_ACC_MKNOD : 0;
		if (!bit)
			return -1;
		e->access |= bit;
	}
	return 0;
}

/*
 * runc's devicefilter program (libcontainer/cgroups/ebpf/devicefilter): the context (struct bpf_cgroup_dev_ctx)
 * loaded into r2 (type), r3 (access), r4 (major), r5 (minor); one block per exception, which returns its action
 * when the type, the major, the minor and the access all match (the access asked a subset of the rule's), else
 * jumps to the next block; the default action at the end.
 */
static void build(struct program *p, bool default_allow, const struct exception *ex, size_t n)
{
	emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 0, 0);
	emit(p, BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff);
	emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, 0, 0);
	emit(p, BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
	emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, 4, 0);
	emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, 8, 0);
	for (size_t i = 0; i < n; i++) {
		size_t start = p->n;
		emit(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, 0, ex[i].type);
		if (ex[i].access != ALL_ACCESS) {
			emit(p, BPF_ALU | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
			emit(p, BPF_ALU | BPF_AND | BPF_K, BPF_REG_1, 0, 0, ex[i].access);
			emit(p, BPF_JMP | BPF_JNE | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
		}
		if (ex[i].major != WILDCARD)
			emit(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, 0, (int32_t)ex[i].major);
		if (ex[i].minor != WILDCARD)
			emit(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 0, (int32_t)ex[i].minor);
		emit(p, BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, !default_allow);
		emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
		/* Every jump of the block goes to the next block, the instruction after this one. */
		for (size_t j = start; j < p->n; j++)
			if (BPF_CLASS(p->insns[j].code) == BPF_JMP && BPF_OP(p->insns[j].code) == BPF_JNE)
				p->insns[j].off = (int16_t)(p->n - j - 1);
	}
	emit(p, BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, default_allow);
	emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

/* The last line the verifier wrote (why it refused the program), or "". */
static const char *verifier_reason(char *log)
{
	size_t len = strlen(log);
	while (len && log[len - 1] == '\n')
		log[--len] = 0;
	char *last = strrchr(log, '\n');
	return last ? last + 1 : log;
}

static int load(const struct program *p, char *err, size_t errlen)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)p->insns;
	attr.insn_cnt = (uint32_t)p->n;
	attr.license = (uint64_t)(uintptr_t)LICENSE;
	int fd = bpf(BPF_PROG_LOAD, &attr);
	if (fd >= 0)
		return fd;
	int first = errno;
	/* Again with the verifier's log, for the message. */
	static char log[65536];
	log[0] = 0;
	attr.log_level = 1;
	attr.log_buf = (uint64_t)(uintptr_t)log;
	attr.log_size = sizeof log;
	fd = bpf(BPF_PROG_LOAD, &attr);
	if (fd >= 0)
		return fd;
	const char *reason = verifier_reason(log);
	snprintf(err, errlen, "linux.resources.devices: load the eBPF device program (%zu instructions): %s%s%s",
		 p->n, errtext(first), *reason ? ": the verifier says: " : "", reason);
	errno = first;
	return -1;
}

/* The ids of the device programs attached to the cgroup at cgroup_fd; how many (at most max), -1 on error. */
static int attached(int cgroup_fd, uint32_t *ids, uint32_t max)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.query.target_fd = (uint32_t)cgroup_fd;
	attr.query.attach_type = BPF_CGROUP_DEVICE;
	attr.query.prog_ids = (uint64_t)(uintptr_t)ids;
	attr.query.prog_cnt = max;
	if (bpf(BPF_PROG_QUERY, &attr) < 0)
		return -1;
	return (int)(attr.query.prog_cnt < max ? attr.query.prog_cnt : max);
}

static void detach(int cgroup_fd, uint32_t id)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.prog_id = id;
	int prog = bpf(BPF_PROG_GET_FD_BY_ID, &attr);
	if (prog < 0)
		return; /* gone already */
	memset(&attr, 0, sizeof attr);
	attr.target_fd = (uint32_t)cgroup_fd;
	attr.attach_bpf_fd = (uint32_t)prog;
	attr.attach_type = BPF_CGROUP_DEVICE;
	bpf(BPF_PROG_DETACH, &attr);
	close(prog);
}

int device_filter_wanted(const struct records *r)
{
	return records_get(r, "cgroup_device_default") != NULL;
}

int device_filter_attach(const struct records *r, const char *dir, char *err, size_t errlen)
{
	const char *def = records_get(r, "cgroup_device_default");
	if (!def)
		return 0;
	if (strcmp(def, "allow") && strcmp(def, "deny"))
		return fail(err, errlen, EINVAL, "invalid record cgroup_device_default=%.40s", def);
	struct exception *ex = NULL;
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->v[i].key, "cgroup_device"))
			continue;
		ex = xrealloc(ex, (n + 1) * sizeof *ex);
		if (parse_exception(r->v[i].value, &ex[n++]) < 0) {
			free(ex);
			return fail(err, errlen, EINVAL, "invalid record cgroup_device=%.80s", r->v[i].value);
		}
	}
	struct program p = { 0 };
	build(&p, !strcmp(def, "allow"), ex, n);
	free(ex);
	int prog = -1, cgroup = -1, rc = -1;
	uint32_t old[64];
	int nold;
	prog = load(&p, err, errlen);
	if (prog < 0)
		goto out;
	cgroup = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgroup < 0 || (nold = attached(cgroup, old, ARRAY_LEN(old))) < 0) {
		snprintf(err, errlen, "linux.resources.devices: open the cgroup %s: %s", dir, errtext(errno));
		goto out;
	}
	union bpf_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.target_fd = (uint32_t)cgroup;
	attr.attach_bpf_fd = (uint32_t)prog;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_flags = BPF_F_ALLOW_MULTI;
	if (bpf(BPF_PROG_ATTACH, &attr) < 0) {
		snprintf(err, errlen, "linux.resources.devices: attach the eBPF device program to %s: %s", dir, errtext(errno));
		goto out;
	}
	for (int i = 0; i < nold; i++)
		detach(cgroup, old[i]);
	rc = 0;
out:;
	int saved = errno;
	/* The attachment holds the program: it goes with the cgroup directory. */
	if (prog >= 0)
		close(prog);
	if (cgroup >= 0)
		close(cgroup);
	free(p.insns);
	errno = saved;
	return rc;
}
