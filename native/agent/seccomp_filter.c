#define _GNU_SOURCE
#include "seccomp_filter.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "sync.h"
#include "util.h"

struct seccomp_filter {
	struct sock_filter *insns;
	unsigned short len;
	unsigned int flags; /* SECCOMP_FILTER_FLAG_* for seccomp(2) */
	bool notifies;	    /* a rule's action is SCMP_ACT_NOTIFY: installed with a listener for the seccomp agent */
};

#define MAX_ARCHS 24
#define X32_SYSCALL_BIT 0x40000000u

struct rule {
	char *name;
	uint32_t action;
	struct scmp_arg_cmp args[6];
	unsigned nargs;
};

static int fail(char *err, size_t errlen, int code, const char *fmt, const char *what)
{
	snprintf(err, errlen, fmt, what);
	errno = code;
	return -1;
}

/* SECCOMP_RET_ERRNO / TRACE carry their errno in the low 16 bits; runc skips a rule equal to the default. */
static bool allows(uint32_t action)
{
	uint32_t kind = action & SECCOMP_RET_ACTION_FULL;
	return kind == SECCOMP_RET_ALLOW || kind == SECCOMP_RET_LOG || kind == SECCOMP_RET_TRACE;
}

/*
 * runc's -ENOSYS stub (libcontainer/seccomp/patchbpf): a syscall newer than every syscall the profile names gets
 * ENOSYS rather than the default action, so that a program probing for it (clone3, faccessat2…) falls back
 * instead of failing with EPERM. Prepended to libseccomp's program; a short program of its own, so every jump
 * stays in range.
 */
struct stub {
	struct sock_filter insns[128];
	size_t n;
};

static void emit(struct stub *s, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	s->insns[s->n++] = (struct sock_filter){ code, jt, jf, k };
}

/* The per-arch largest syscall number among the rules' names; 0 where none is known on that arch. */
static uint32_t largest_syscall(uint32_t arch, struct rule *rules, size_t nrules)
{
	int largest = 0;
	for (size_t i = 0; i < nrules; i++) {
		int nr = seccomp_syscall_resolve_name_arch(arch, rules[i].name);
		if (nr > largest)
			largest = nr;
	}
	return (uint32_t)largest;
}

/*
 * Sections per AUDIT_ARCH: x86_64 may hold two ABIs (x32 numbers have X32_SYSCALL_BIT set). Jumps are patched
 * once the sections' places are known: jt/jf hold -1 (to ENOSYS) or -2 (to the filter) until then.
 */
#define TO_ENOSYS 0xff
#define TO_FILTER 0xfe

static void build_stub(struct stub *s, const uint32_t *archs, size_t narchs, struct rule *rules, size_t nrules)
{
	struct {
		uint32_t audit;
		uint32_t max_native, max_x32; /* x86_64 only has both */
		bool has_native, has_x32;
	} sec[MAX_ARCHS];
	size_t nsec = 0;
	for (size_t i = 0; i < narchs; i++) {
		bool x32 = archs[i] == SCMP_ARCH_X32;
		uint32_t audit = x32 ? AUDIT_ARCH_X86_64 : archs[i];
		uint32_t max = largest_syscall(archs[i], rules, nrules);
		if (!max)
			continue;
		size_t j = 0;
		while (j < nsec && sec[j].audit != audit)
			j++;
		if (j == nsec)
			sec[nsec++] = (typeof(sec[0])){ .audit = audit };
		if (x32)
			sec[j].has_x32 = true, sec[j].max_x32 = max;
		else
			sec[j].has_native = true, sec[j].max_native = max;
	}
	s->n = 0;
	if (!nsec)
		return;
	/* ld arch; one jeq per section (targets patched below); ja filter */
	emit(s, BPF_LD | BPF_W | BPF_ABS, 0, 0, 4);
	size_t jeq_at = s->n;
	for (size_t i = 0; i < nsec; i++)
		emit(s, BPF_JMP | BPF_JEQ | BPF_K, 0, 0, sec[i].audit);
	emit(s, BPF_JMP | BPF_JA, TO_FILTER, 0, 0);
	for (size_t i = 0; i < nsec; i++) {
		s->insns[jeq_at + i].jt = (uint8_t)(s->n - (jeq_at + i) - 1);
		emit(s, BPF_LD | BPF_W | BPF_ABS, 0, 0, 0); /* ld nr */
		if (sec[i].audit == AUDIT_ARCH_X86_64) {
			/* The x32 bit set: the x32 test, or the filter when the profile has no x32; else the native test. */
			if (sec[i].has_native && sec[i].has_x32) {
				emit(s, BPF_JMP | BPF_JSET | BPF_K, 1, 0, X32_SYSCALL_BIT);
				emit(s, BPF_JMP | BPF_JGT | BPF_K, TO_ENOSYS, TO_FILTER, sec[i].max_native);
				emit(s, BPF_JMP | BPF_JGT | BPF_K, TO_ENOSYS, TO_FILTER, sec[i].max_x32);
			} else if (sec[i].has_native) {
				emit(s, BPF_JMP | BPF_JSET | BPF_K, TO_FILTER, 0, X32_SYSCALL_BIT);
				emit(s, BPF_JMP | BPF_JGT | BPF_K, TO_ENOSYS, TO_FILTER, sec[i].max_native);
			} else {
				emit(s, BPF_JMP | BPF_JSET | BPF_K, 0, TO_FILTER, X32_SYSCALL_BIT);
				emit(s, BPF_JMP | BPF_JGT | BPF_K, TO_ENOSYS, TO_FILTER, sec[i].max_x32);
			}
		} else {
			emit(s, BPF_JMP | BPF_JGT | BPF_K, TO_ENOSYS, TO_FILTER, sec[i].max_native);
		}
	}
	size_t enosys = s->n;
	emit(s, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS);
	size_t filter = s->n;
	for (size_t i = 0; i < enosys; i++) {
		struct sock_filter *f = &s->insns[i];
		if (BPF_CLASS(f->code) != BPF_JMP)
			continue;
		if (BPF_OP(f->code) == BPF_JA) {
			if (f->jt == TO_FILTER)
				f->k = (uint32_t)(filter - i - 1), f->jt = 0;
			continue;
		}
		if (f->jt == TO_ENOSYS)
			f->jt = (uint8_t)(enosys - i - 1);
		else if (f->jt == TO_FILTER)
			f->jt = (uint8_t)(filter - i - 1);
		if (f->jf == TO_ENOSYS)
			f->jf = (uint8_t)(enosys - i - 1);
		else if (f->jf == TO_FILTER)
			f->jf = (uint8_t)(filter - i - 1);
	}
}

/* libseccomp's program for ctx, in memory. */
static int export_program(scmp_filter_ctx ctx, struct sock_filter **insns, size_t *len)
{
	int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = seccomp_export_bpf(ctx, fd);
	off_t size = lseek(fd, 0, SEEK_END);
	if (rc < 0 || size < 0 || size % (off_t)sizeof(struct sock_filter)) {
		close(fd);
		errno = rc < 0 ? -rc : EINVAL;
		return -1;
	}
	*insns = xcalloc(1, (size_t)size + 1);
	ssize_t got = pread(fd, *insns, (size_t)size, 0);
	close(fd);
	if (got != size) {
		free(*insns);
		errno = EIO;
		return -1;
	}
	*len = (size_t)size / sizeof(struct sock_filter);
	return 0;
}

static int parse_rules(const struct records *r, struct rule **out, size_t *n, char *err, size_t errlen)
{
	struct rule *rules = NULL;
	size_t nrules = 0;
	for (size_t i = 0; i < r->n; i++) {
		const char *k = r->v[i].key;
		char value[512], *f[4];
		uint64_t a, b, c, d;
		if (strcmp(k, "seccomp_syscall") && strcmp(k, "seccomp_arg"))
			continue;
		snprintf(value, sizeof value, "%s", r->v[i].value);
		if (!strcmp(k, "seccomp_syscall")) {
			if (split_fields(value, UNIT_SEP, f, 2) != 2 || !*f[0] || !parse_u64(f[1], &a) || a > UINT32_MAX)
				goto bad;
			rules = xrealloc(rules, (nrules + 1) * sizeof *rules);
			rules[nrules++] = (struct rule){ .name = xstrdup(f[0]), .action = (uint32_t)a };
		} else {
			if (!nrules || rules[nrules - 1].nargs == 6 || split_fields(value, UNIT_SEP, f, 4) != 4 ||
			    !parse_u64(f[0], &a) || a > 5 || !parse_u64(f[1], &b) || b < SCMP_CMP_NE || b > SCMP_CMP_MASKED_EQ ||
			    !parse_u64(f[2], &c) || !parse_u64(f[3], &d))
				goto bad;
			struct rule *rule = &rules[nrules - 1];
			rule->args[rule->nargs++] = (struct scmp_arg_cmp){ (unsigned)a, (enum scmp_compare)b, c, d };
		}
		continue;
	bad:
		for (size_t j = 0; j < nrules; j++)
			free(rules[j].name);
		free(rules);
		snprintf(err, errlen, "invalid record %s=%.80s", k, r->v[i].value);
		errno = EINVAL;
		return -1;
	}
	*out = rules;
	*n = nrules;
	return 0;
}

struct seccomp_filter *seccomp_compile(const struct records *r, char *err, size_t errlen)
{
	err[0] = 0;
	const char *def = records_get(r, "seccomp_default");
	if (!def)
		return NULL;
	uint64_t default_action, flags = 0;
	if (!parse_u64(def, &default_action) || default_action > UINT32_MAX) {
		fail(err, errlen, EINVAL, "invalid record seccomp_default=%.40s", def);
		return NULL;
	}
	const char *flag_text = records_get(r, "seccomp_flags");
	if (flag_text && !parse_u64(flag_text, &flags)) {
		fail(err, errlen, EINVAL, "invalid record seccomp_flags=%.40s", flag_text);
		return NULL;
	}
	struct rule *rules;
	size_t nrules;
	if (parse_rules(r, &rules, &nrules, err, errlen) < 0)
		return NULL;

	struct seccomp_filter *filter = NULL;
	uint32_t archs[MAX_ARCHS];
	size_t narchs = 0;
	scmp_filter_ctx ctx = seccomp_init((uint32_t)default_action);
	if (!ctx) {
		fail(err, errlen, EINVAL, "seccomp: the default action %s is not one the kernel and libseccomp take", def);
		goto out;
	}
	/* Large rule sets are matched through a binary tree, as runc asks libseccomp for. */
	if (nrules > 32)
		seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->v[i].key, "seccomp_arch"))
			continue;
		uint32_t arch = seccomp_arch_resolve_name(r->v[i].value);
		if (!arch) {
			fail(err, errlen, EINVAL, "seccomp: architecture %s is not known to libseccomp", r->v[i].value);
			goto out;
		}
		int rc = seccomp_arch_add(ctx, arch);
		if (rc < 0 && rc != -EEXIST) {
			snprintf(err, errlen, "seccomp: add the architecture %s: %s", r->v[i].value, errtext(-rc));
			errno = -rc;
			goto out;
		}
		if (narchs < MAX_ARCHS)
			archs[narchs++] = arch;
	}
	for (size_t i = 0; i < nrules; i++) {
		struct rule *rule = &rules[i];
		if (rule->action == default_action)
			continue;
		int nr = seccomp_syscall_resolve_name(rule->name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* unknown to libseccomp, or to this architecture: skipped, as runc does */
		int rc = seccomp_rule_add_array(ctx, rule->action, nr, rule->nargs, rule->args);
		if (rc < 0) {
			snprintf(err, errlen, "seccomp: add the rule for syscall %s: %s", rule->name, errtext(-rc));
			errno = -rc;
			goto out;
		}
	}
	struct sock_filter *program;
	size_t len;
	if (export_program(ctx, &program, &len) < 0) {
		snprintf(err, errlen, "seccomp: export the filter: %s", errtext(errno));
		goto out;
	}
	struct stub stub = { .n = 0 };
	bool enosys_default = (default_action & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ERRNO &&
			      (default_action & SECCOMP_RET_DATA) == ENOSYS;
	if (!allows((uint32_t)default_action) && !enosys_default)
		build_stub(&stub, archs, narchs, rules, nrules);
	if (len + stub.n > BPF_MAXINSNS) {
		free(program);
		fail(err, errlen, E2BIG, "seccomp: the filter has more than %s instructions", "4096");
		goto out;
	}
	filter = xcalloc(1, sizeof *filter);
	filter->len = (unsigned short)(len + stub.n);
	filter->insns = xcalloc(filter->len, sizeof *filter->insns);
	memcpy(filter->insns, stub.insns, stub.n * sizeof *stub.insns);
	memcpy(filter->insns + stub.n, program, len * sizeof *program);
	filter->flags = (unsigned)flags;
	for (size_t i = 0; i < nrules; i++)
		filter->notifies |= (rules[i].action & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_USER_NOTIF;
	free(program);
out:
	if (ctx)
		seccomp_release(ctx);
	for (size_t i = 0; i < nrules; i++)
		free(rules[i].name);
	free(rules);
	return filter;
}

void seccomp_free(struct seccomp_filter *f)
{
	if (!f)
		return;
	free(f->insns);
	free(f);
}

void seccomp_install(const struct seccomp_filter *f)
{
	if (!f)
		return;
	struct sock_fprog prog = { f->len, f->insns };
	unsigned int flags = f->flags;
	if (f->notifies) {
		flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
		/* With TSYNC the kernel takes a listener only if a thread that cannot sync is ESRCH, not its tid (as libseccomp). */
		if (flags & SECCOMP_FILTER_FLAG_TSYNC)
			flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
	}
	long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
	if (listener < 0)
		child_fail(errno, "seccomp: install the filter");
	if (!f->notifies)
		return;
	/* The runtime hands the listener to the seccomp agent (seccomp_listener.h); a notified syscall waits for it. */
	child_send(SYNC_SECCOMP, NULL, 0, (int)listener);
	close((int)listener);
	free(child_expect(SYNC_SECCOMP_DONE, NULL));
}
