/* How the attester gives up (attestation.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "attestation.h"

_Noreturn void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}
