/*
 * A test's view of seccomp from inside a container: makes each syscall given as NR[,ARG...] (decimal) and
 * prints "NR errno=E" (0 when it succeeded), one line each. Built static by the tests that copy it into a rootfs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		long a[7] = { 0 };
		int n = 0;
		for (char *p = strtok(argv[i], ","); p && n < 7; p = strtok(NULL, ","))
			a[n++] = strtol(p, NULL, 0);
		errno = 0;
		long rc = syscall(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
		printf("%ld errno=%d\n", a[0], rc < 0 ? errno : 0);
	}
	return 0;
}
