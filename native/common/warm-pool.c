#define _GNU_SOURCE
#include "warm-pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "file-lock.h"
#include "frame.h"
#include "process-identity.h"
#include "unix-socket.h"

extern char **environ;

/* Room in a new member's command line for the shim's, which it takes as its title once taken (ps shows it). */
#define TITLE_ROOM 2048
#define READY_TIMEOUT_MS 60000
#define PAYLOAD_MAX (16u << 20)

static const char *const kind_names[] = POOL_KIND_NAMES;
static const char *const shim_code[] = POOL_SHIM_CODE;
static const char *const cli_code[] = POOL_CLI_CODE;
static const char *const load_time_env[] = POOL_LOAD_TIME_ENV;

static uint64_t fnv1a(uint64_t hash, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		hash ^= *p;
		hash *= 0x100000001b3ULL;
	}
	return hash;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

/* The build id: FNV-1a 64 of "PATH INODE SIZE MTIME_NS\n" for each file of the kind's code (buildId in
 * src/host/warm-pool.ts). False when a file is missing. */
static bool build_id(const char *install, enum pool_kind kind, char *out)
{
	/* A shimvm member runs the shim's code. */
	const char *const *files = kind == POOL_KIND_CLI ? cli_code : shim_code;
	size_t count = kind == POOL_KIND_CLI ? POOL_CLI_CODE_COUNT : POOL_SHIM_CODE_COUNT;
	uint64_t hash = FNV_OFFSET;
	for (size_t i = 0; i < count; i++) {
		char path[4096], line[4352];
		struct stat st;
		if (!join_path(path, sizeof path, install, files[i]) || stat(path, &st) != 0)
			return false;
		unsigned long long mtime_ns = (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec;
		snprintf(line, sizeof line, "%s %llu %llu %llu\n", files[i], (unsigned long long)st.st_ino,
			 (unsigned long long)st.st_size, mtime_ns);
		hash = fnv1a(hash, line);
	}
	snprintf(out, POOL_BUILD_ID_LENGTH + 1, "%016llx", (unsigned long long)hash);
	return true;
}

/* A directory of this user's that no one else may enter, made when missing. */
static bool private_directory(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return false;
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 077) == 0;
}

static int env_number(const char *name, int fallback, bool (*valid)(long long))
{
	const char *text = getenv(name);
	uint64_t value;
	return text && parse_u64(text, &value) && value <= INT_MAX && valid((long long)value) ? (int)value : fallback;
}

bool pool_valid_size(long long size)
{
	return size >= 0 && size <= POOL_MAX_SIZE;
}

bool pool_valid_idle(long long seconds)
{
	return seconds >= 1 && seconds <= POOL_MAX_IDLE_SECONDS;
}

bool pool_open(struct pool *pool, enum pool_kind kind, const char *entry)
{
	memset(pool, 0, sizeof *pool);
	pool->kind = kind;
	pool->size = env_number(ENV_POOL_SIZE, POOL_DEFAULT_SIZE, pool_valid_size);
	pool->idle_seconds = env_number(ENV_POOL_IDLE_SECONDS, POOL_DEFAULT_IDLE_SECONDS, pool_valid_idle);
	/* entry is INSTALL/bin/FILE */
	if (!realpath(entry, pool->install))
		return false;
	for (int strip = 0; strip < 2; strip++) {
		char *slash = strrchr(pool->install, '/');
		if (!slash || slash == pool->install)
			return false;
		*slash = 0;
	}
	if (!build_id(pool->install, kind, pool->build))
		return false;
	const char *dir = getenv(ENV_POOL_DIR);
	if (dir && *dir) {
		if (strlen(dir) >= sizeof pool->dir || mkdir_all(dir, 0700) != 0)
			return false;
		strcpy(pool->dir, dir);
		return private_directory(pool->dir);
	}
	snprintf(pool->dir, sizeof pool->dir, "%s/%0*llx", POOL_ROOT, POOL_INSTALL_DIR_NAME_LENGTH,
		 (unsigned long long)fnv1a(FNV_OFFSET, pool->install));
	return mkdir_all(POOL_ROOT, 0700) == 0 && private_directory(POOL_ROOT) && private_directory(pool->dir);
}

struct member {
	enum pool_kind kind;
	char build[POOL_BUILD_ID_LENGTH + 1];
	pid_t pid;
	char start[32];
};

static bool all_digits(const char *s, size_t max)
{
	size_t n = strlen(s);
	return n > 0 && n <= max && strspn(s, "0123456789") == n;
}

/* A name POOL_MEMBER_SOCKET makes, read back. */
static bool parse_member(const char *name, struct member *m)
{
	char copy[256];
	if (strlen(name) >= sizeof copy)
		return false;
	strcpy(copy, name);
	char *fields[5];
	if (split_fields(copy, '.', fields, 5) != 5)
		return false;
	if (strcmp(fields[4], "sock") != 0 || strlen(fields[1]) != POOL_BUILD_ID_LENGTH ||
	    strspn(fields[1], "0123456789abcdef") != POOL_BUILD_ID_LENGTH || !all_digits(fields[2], 9) ||
	    !all_digits(fields[3], sizeof m->start - 1))
		return false;
	size_t kind = 0;
	while (kind < POOL_KIND_NAMES_COUNT && strcmp(fields[0], kind_names[kind]) != 0)
		kind++;
	if (kind == POOL_KIND_NAMES_COUNT)
		return false;
	m->kind = (enum pool_kind)kind;
	strcpy(m->build, fields[1]);
	m->pid = (pid_t)atoi(fields[2]);
	strcpy(m->start, fields[3]);
	return m->pid > 0;
}

void pool_add_process_records(struct buf *records, const char *const *args, const char *cwd)
{
	for (size_t i = 0; args[i]; i++)
		record_add(records, "arg", args[i]);
	for (char **env = environ; *env; env++)
		record_add(records, "env", *env);
	record_add(records, "cwd", cwd);
	mode_t mask = umask(0);
	umask(mask);
	record_addf(records, "umask", "%o", (unsigned)mask);
}

/* Waits (up to timeout_ms) for exactly the bytes of want on fd. */
static bool read_exactly(int fd, const char *want, int timeout_ms)
{
	size_t len = strlen(want), got = 0;
	char seen[64];
	uint64_t deadline = now_mono_ms() + (uint64_t)timeout_ms;
	while (got < len) {
		uint64_t now = now_mono_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		ssize_t n = read(fd, seen + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return memcmp(seen, want, len) == 0;
}

static bool hand_over(int sock, const struct buf *message, const int *fds, size_t nfds)
{
	struct timeval timeout = { .tv_sec = POOL_HANDOFF_TIMEOUT_MS / 1000, .tv_usec = (POOL_HANDOFF_TIMEOUT_MS % 1000) * 1000 };
	if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0)
		return false;
	ssize_t sent = send_fds(sock, message->data, message->len, fds, nfds);
	if (sent <= 0)
		return false;
	if ((size_t)sent < message->len && write_all(sock, message->data + sent, message->len - (size_t)sent) != 0)
		return false;
	return read_exactly(sock, POOL_TAKEN, POOL_HANDOFF_TIMEOUT_MS);
}

int pool_take(const struct pool *pool, const struct buf *records, const int *fds, size_t nfds, pid_t *pid)
{
	if (pool->size <= 0 || records->len > PAYLOAD_MAX)
		return -1;
	/* A member read these as it loaded, with PATH alone in its environment: work that sets one is Node's. */
	for (size_t i = 0; i < POOL_LOAD_TIME_ENV_COUNT; i++)
		if (getenv(load_time_env[i]))
			return -1;
	DIR *dir = opendir(pool->dir);
	if (!dir)
		return -1;
	struct buf message = { 0 };
	unsigned char length[4] = { (unsigned char)(records->len >> 24), (unsigned char)(records->len >> 16),
				    (unsigned char)(records->len >> 8), (unsigned char)records->len };
	buf_add(&message, length, sizeof length);
	buf_add(&message, records->data, records->len);
	int taken = -1;
	struct dirent *entry;
	while (taken < 0 && (entry = readdir(dir))) {
		struct member m;
		char path[4096];
		if (!parse_member(entry->d_name, &m) || m.kind != pool->kind || strcmp(m.build, pool->build) != 0 ||
		    !join_path(path, sizeof path, pool->dir, entry->d_name))
			continue;
		if (!process_alive(m.pid, m.start)) {
			unlink(path);
			continue;
		}
		/* Each member accepts one connection: another launcher that reached it first leaves this one refused. */
		int sock = unix_connect(path);
		if (sock < 0)
			continue;
		if (hand_over(sock, &message, fds, nfds)) {
			taken = sock;
			*pid = m.pid;
		} else {
			close(sock);
		}
	}
	closedir(dir);
	buf_free(&message);
	return taken;
}

/* Removes dead members' sockets and ends members of other builds; the live members of this build. */
static int sweep(const struct pool *pool)
{
	DIR *dir = opendir(pool->dir);
	if (!dir)
		return 0;
	int live = 0;
	struct dirent *entry;
	while ((entry = readdir(dir))) {
		struct member m;
		char path[4096];
		if (!parse_member(entry->d_name, &m) || m.kind != pool->kind || !join_path(path, sizeof path, pool->dir, entry->d_name))
			continue;
		bool alive = process_alive(m.pid, m.start);
		if (alive && !strcmp(m.build, pool->build)) {
			live++;
			continue;
		}
		if (alive)
			kill(m.pid, SIGTERM);
		unlink(path);
	}
	closedir(dir);
	return live;
}

/* Starts one member, `node INSTALL/POOL_WORKER_ENTRY KIND IDLE DIR ROOM` in a session of its own, its fd 3 the write
 * end of a pipe it reports POOL_READY on; the read end, or -1. */
static int start_member(const struct pool *pool, char *const envp[])
{
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		static char room[TITLE_ROOM + 1];
		memset(room, ' ', TITLE_ROOM);
		char entry[4200], idle[16];
		snprintf(idle, sizeof idle, "%d", pool->idle_seconds);
		if (setsid() < 0 || !join_path(entry, sizeof entry, pool->install, POOL_WORKER_ENTRY) || dup2(ready[1], 3) < 0)
			_exit(127);
		char *argv[] = { "node", entry, (char *)kind_names[pool->kind], idle, (char *)pool->dir, room, NULL };
		execvpe("node", argv, envp);
		_exit(127);
	}
	close(ready[1]);
	if (pid < 0) {
		close(ready[0]);
		return -1;
	}
	return ready[0];
}

/* Makes this process's command line (and name) `title` and empties its environment, by overwriting both in
 * place: a refill forked from a launcher would otherwise show the caller's command line, container id included,
 * and its environment (/proc/PID/environ), for as long as it runs. arg_start, arg_end, env_start and env_end are
 * fields 48 to 51 of /proc/self/stat. */
static void retitle(const char *title)
{
	char stat[2048];
	if (read_file("/proc/self/stat", stat, sizeof stat) < 0)
		return;
	char *fields = strrchr(stat, ')');
	if (!fields)
		return;
	unsigned long start = 0, end = 0, env_start = 0, env_end = 0;
	char *field = fields + 2;
	/* Field 3 (state) is the first after the name: arg_start is 45 fields further on. */
	for (int n = 3; n < 48 && field; n++) {
		field = strchr(field, ' ');
		if (field)
			field++;
	}
	if (!field || sscanf(field, "%lu %lu %lu %lu", &start, &end, &env_start, &env_end) != 4 || end <= start)
		return;
	char *area = (char *)start;
	size_t len = end - start;
	memset(area, 0, len);
	memcpy(area, title, strlen(title) < len - 1 ? strlen(title) : len - 1);
	if (env_end > env_start)
		memset((char *)env_start, 0, env_end - env_start);
	prctl(PR_SET_NAME, "runbox-refill");
}

/* What new members are started with: Node's search path and nothing else of the caller's environment (a handoff
 * brings theirs), but for a shimvm member what its VM is made with (POOL_VM_ENV_PREFIX): a member whose VM is not
 * what a pod's environment asks for does not use it. Copied, as the caller's environment is emptied (retitle). */
static char **member_environment(const struct pool *pool)
{
	static char *envp[64];
	const char *path = getenv("PATH");
	size_t envc = 0;
	if (asprintf(&envp[envc], "PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin") >= 0)
		envc++;
	for (char **var = environ; pool->kind == POOL_KIND_SHIM_VM && *var && envc < ARRAY_LEN(envp) - 1; var++) {
		if (!strncmp(*var, POOL_VM_ENV_PREFIX, strlen(POOL_VM_ENV_PREFIX)) && (envp[envc] = strdup(*var)))
			envc++;
	}
	envp[envc] = NULL;
	return envp;
}

static _Noreturn void refill(const struct pool *pool, char **envp)
{
	int lock_len = snprintf(NULL, 0, POOL_REFILL_LOCK, kind_names[pool->kind]);
	char lock_name[64], lock_path[4200];
	if (lock_len < 0 || lock_len >= (int)sizeof lock_name)
		_exit(0);
	snprintf(lock_name, sizeof lock_name, POOL_REFILL_LOCK, kind_names[pool->kind]);
	if (!join_path(lock_path, sizeof lock_path, pool->dir, lock_name) || file_lock(lock_path, false) < 0)
		_exit(0); /* another refill of this kind is under way */
	if (pool->kind == POOL_KIND_SHIM_VM)
		usleep(POOL_VM_REFILL_DELAY_MS * 1000);
	int wanted = pool->size - sweep(pool);
	struct pollfd waiting[POOL_MAX_SIZE];
	int count = 0;
	for (int i = 0; i < wanted && count < POOL_MAX_SIZE; i++) {
		int fd = start_member(pool, envp);
		if (fd >= 0)
			waiting[count++] = (struct pollfd){ .fd = fd, .events = POLLIN };
	}
	/* The lock is held until the new members are in the pool, so that the next refill counts them. */
	uint64_t deadline = now_mono_ms() + READY_TIMEOUT_MS;
	for (int open_count = count; open_count > 0;) {
		uint64_t now = now_mono_ms();
		if (now >= deadline || poll(waiting, (nfds_t)count, (int)(deadline - now)) < 0)
			break;
		for (int i = 0; i < count; i++) {
			if (waiting[i].fd < 0 || !waiting[i].revents)
				continue;
			close(waiting[i].fd);
			waiting[i].fd = -1;
			open_count--;
		}
	}
	_exit(0);
}

void pool_refill(const struct pool *pool)
{
	if (pool->size <= 0)
		return;
	pid_t child = fork();
	if (child < 0)
		return;
	if (child > 0) {
		while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
			;
		return;
	}
	/* Nothing of the caller's: its stdout may be a pipe someone reads to its end (containerd reads start's). */
	int null = open("/dev/null", O_RDWR);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		_exit(0);
	close_range(3, ~0U, 0);
	reset_signals();
	if (setsid() < 0 || setpriority(PRIO_PROCESS, 0, 19) != 0)
		_exit(0);
	char **envp = member_environment(pool);
	/* Titled before the caller's wait for this process ends, so that no process with the caller's command line or
	 * environment outlives the caller. */
	retitle("runbox pool refill");
	/* The members' environment is this process's now: execvpe looks node up in its PATH. */
	environ = envp;
	/* Its own child refills, reparented at once: the caller waits for nothing. */
	pid_t refiller = fork();
	if (refiller == 0)
		refill(pool, envp);
	_exit(0);
}
