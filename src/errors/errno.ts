// The errno values the agent puts in its error responses and the host acts on, by name (native/agent/PROTOCOL.md,
// "Errnos worth acting on"). They are Linux's, wherever the agent runs: a unit test holds them against the
// protocol's text and the host's os.constants.errno (which lacks ESHUTDOWN).
export const Errno = {
  /** No such container or exec. */
  ENOENT: 2,
  /** The process is not running. */
  ESRCH: 3,
  /** The id is in use. */
  EEXIST: 17,
  /** A bad request, or the container is not in the state the op needs. */
  EINVAL: 22,
  /** The sandbox cannot do it (pause without a freezer, update without cgroups). */
  EOPNOTSUPP: 95,
  /** The agent is shutting down. */
  ESHUTDOWN: 108,
} as const;
