/* The init of the floor benchmark (bench/vm-floor.ts): says it is up on the console, then powers the VM off. */
#include <sys/reboot.h>
#include <unistd.h>

int main(void)
{
	static const char up[] = "floor: up\n";
	(void)!write(1, up, sizeof up - 1);
	reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	return 1;
}
