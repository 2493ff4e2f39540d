/* A connection to a sandbox agent, as the Node drivers make it (agent-session.h). */
#include "agent-session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HEADER_LENGTH 10
#define MAX_PAYLOAD (4 * 1024 * 1024)
enum frame_type { FRAME_REQUEST = 1, FRAME_RESPONSE = 2, FRAME_STDERR = 6 };
/* How long a port's agent may take to greet (GREETING_TIMEOUT_MS in qemu-driver.ts). */
#define GREETING_TIMEOUT_MS 3000

/* The EVENT frame `event=ready` that starts every session on a VM port. */
static const char GREETING[] = "\0\0\0\x0c\0\0\0\0\x03\0event=ready";
#define GREETING_LENGTH (HEADER_LENGTH + 12)

static void session_init(struct agent_session *session) {
    memset(session, 0, sizeof *session);
    session->fd = -1;
    session->lease_fd = -1;
}

/* connectUnix (src/host/unix-socket.ts): a path longer than a sockaddr_un holds through its directory's fd. */
static int connect_unix(const char *path) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    int directory = -1;
    if (strlen(path) < sizeof address.sun_path) {
        strcpy(address.sun_path, path);
    } else {
        const char *slash = strrchr(path, '/');
        char dir[4200];
        if (!slash || slash - path >= (long)sizeof dir) return -1;
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        directory = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (directory < 0 ||
            snprintf(address.sun_path, sizeof address.sun_path, "/proc/self/fd/%d/%s", directory, slash + 1) >= (int)sizeof address.sun_path) {
            if (directory >= 0) close(directory);
            return -1;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        close(fd);
        fd = -1;
    }
    if (directory >= 0) close(directory);
    return fd;
}

bool agent_connect_socket(struct agent_session *session, const char *path) {
    session_init(session);
    session->fd = connect_unix(path);
    return session->fd >= 0;
}

static void set_broken(struct agent_session *session, const char *format, const char *detail) {
    if (!session->broken[0]) snprintf(session->broken, sizeof session->broken, format, detail);
}

/* Reads what the connection has into the buffer; false once it is broken (or timeout_ms passed, if >= 0). */
static bool receive(struct agent_session *session, int timeout_ms) {
    if (timeout_ms >= 0) {
        struct pollfd poller = {.fd = session->fd, .events = POLLIN};
        int ready;
        do ready = poll(&poller, 1, timeout_ms);
        while (ready < 0 && errno == EINTR);
        if (ready <= 0) return false;
    }
    if (session->capacity - session->buffered < 65536) {
        size_t capacity = session->capacity * 2 + 65536;
        char *bigger = realloc(session->buffer, capacity);
        if (!bigger) {
            set_broken(session, "agent connection failed: %s", "out of memory");
            return false;
        }
        session->buffer = bigger;
        session->capacity = capacity;
    }
    ssize_t n;
    do n = read(session->fd, session->buffer + session->buffered, session->capacity - session->buffered);
    while (n < 0 && errno == EINTR);
    if (n == 0) set_broken(session, "%s", "the agent closed the connection");
    if (n < 0) set_broken(session, "agent connection failed: read %s", strerrorname_np(errno));
    if (n <= 0) return false;
    session->buffered += (size_t)n;
    return true;
}

static void drop_front(struct agent_session *session, size_t count) {
    memmove(session->buffer, session->buffer + count, session->buffered - count);
    session->buffered -= count;
}

static long milliseconds_left(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long left = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return left > 0 ? left : 0;
}

/* Waits for the agent's greeting; what came before it is an earlier session's tail, what follows is kept. */
static bool await_greeting(struct agent_session *session) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += GREETING_TIMEOUT_MS / 1000;
    for (;;) {
        char *at = session->buffered ? memmem(session->buffer, session->buffered, GREETING, GREETING_LENGTH) : NULL;
        if (at) {
            drop_front(session, (size_t)(at - session->buffer) + GREETING_LENGTH);
            return true;
        }
        /* Keep only what could be the start of a greeting split across reads. */
        if (session->buffered >= GREETING_LENGTH) drop_front(session, session->buffered - GREETING_LENGTH + 1);
        if (!receive(session, (int)milliseconds_left(&deadline))) return false;
    }
}

/* leasePort: a free port's lock, from a random one on (a port just released may still carry its old session). */
static int lease_port(const char *dir, int ports, int *index) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int first = (int)(((unsigned)getpid() ^ (unsigned)now.tv_nsec) % (unsigned)ports);
    char path[4200];
    for (int i = 0; i <= ports; i++) {
        *index = (first + i) % ports;
        snprintf(path, sizeof path, "%s/agent-%d.lock", dir, *index);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) return -1;
        /* Every port busy: wait for the first one, as many clients at once only ever make it wait briefly. */
        int locked;
        do locked = flock(fd, i < ports ? LOCK_EX | LOCK_NB : LOCK_EX);
        while (locked < 0 && errno == EINTR);
        if (locked == 0) return fd;
        close(fd);
    }
    return -1;
}

bool agent_connect_vm_port(struct agent_session *session, const char *dir, int ports) {
    session_init(session);
    int index;
    session->lease_fd = lease_port(dir, ports, &index);
    if (session->lease_fd < 0) return false;
    char path[4200];
    snprintf(path, sizeof path, "%s/agent-%d.sock", dir, index);
    session->fd = connect_unix(path);
    if (session->fd >= 0 && await_greeting(session)) return true;
    agent_close(session);
    return false;
}

static void put_u32(unsigned char *at, uint32_t value) {
    at[0] = (unsigned char)(value >> 24);
    at[1] = (unsigned char)(value >> 16);
    at[2] = (unsigned char)(value >> 8);
    at[3] = (unsigned char)value;
}

static uint32_t get_u32(const char *at) {
    const unsigned char *u = (const unsigned char *)at;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static bool send_all(struct agent_session *session, const void *data, size_t length) {
    const char *at = data;
    while (length) {
        ssize_t n = send(session->fd, at, length, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            set_broken(session, "agent connection failed: write %s", strerrorname_np(errno));
            return false;
        }
        at += n;
        length -= (size_t)n;
    }
    return true;
}

/* The answer's records, as Records.decode and AgentClient take them: CALL_ERROR with its `error`, or CALL_OK. */
static enum call_result read_answer(const char *payload, size_t length, char **message) {
    const char *error = NULL;
    size_t error_length = 0;
    for (const char *item = payload; item < payload + length;) {
        const char *nul = memchr(item, '\0', (size_t)(payload + length - item));
        const char *item_end = nul ? nul : payload + length;
        size_t item_length = (size_t)(item_end - item);
        const char *equals = memchr(item, '=', item_length);
        if (item_length && (!equals || equals == item)) {
            int shown = item_length > 40 ? 40 : (int)item_length;
            if (asprintf(message, "malformed agent record \"%.*s\"", shown, item) < 0) *message = NULL;
            return CALL_ERROR;
        }
        if (item_length && !error && equals - item == 5 && memcmp(item, "error", 5) == 0) {
            error = equals + 1;
            error_length = (size_t)(item_end - error);
        }
        item = item_end + 1;
    }
    if (!error) return CALL_OK;
    *message = strndup(error, error_length);
    return CALL_ERROR;
}

enum call_result agent_call(struct agent_session *session, uint32_t id, const char *records, size_t length, char **message) {
    /* One write for the whole frame: one wake-up of the agent, one virtio-serial transfer into a VM. */
    unsigned char *frame = calloc(1, HEADER_LENGTH + length);
    if (!frame) set_broken(session, "agent connection failed: %s", "out of memory");
    else {
        put_u32(frame, (uint32_t)length);
        put_u32(frame + 4, id);
        frame[8] = FRAME_REQUEST;
        memcpy(frame + HEADER_LENGTH, records, length);
        if (!session->broken[0]) send_all(session, frame, HEADER_LENGTH + length);
        free(frame);
    }
    while (!session->broken[0]) {
        if (session->buffered >= HEADER_LENGTH) {
            uint32_t payload_length = get_u32(session->buffer);
            unsigned type = (unsigned char)session->buffer[8];
            char detail[64];
            if (payload_length > MAX_PAYLOAD) {
                snprintf(detail, sizeof detail, "%u bytes (limit %d)", payload_length, MAX_PAYLOAD);
                set_broken(session, "agent sent a frame of %s", detail);
                break;
            }
            if (session->buffered >= HEADER_LENGTH + payload_length) {
                if (type < FRAME_REQUEST || type > FRAME_STDERR) {
                    snprintf(detail, sizeof detail, "%u", type);
                    set_broken(session, "agent sent a frame of unknown type %s", detail);
                    break;
                }
                /* Other frames (events, output of other requests) are not this call's. */
                enum call_result result = CALL_OK;
                bool answered = type == FRAME_RESPONSE && get_u32(session->buffer + 4) == id;
                if (answered) result = read_answer(session->buffer + HEADER_LENGTH, payload_length, message);
                drop_front(session, HEADER_LENGTH + payload_length);
                if (answered) return result;
                continue;
            }
        }
        receive(session, -1);
    }
    *message = strdup(session->broken);
    return CALL_BROKEN;
}

void agent_close(struct agent_session *session) {
    if (session->fd >= 0) close(session->fd);
    if (session->lease_fd >= 0) close(session->lease_fd);
    free(session->buffer);
    session_init(session);
}
