// SPDX-License-Identifier: MIT
/* vbusctl: manage vbusd's buses and devices, iproute2 style. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static const char usage[] =
	"usage: vbusctl [-j] [--run-dir DIR] OBJECT COMMAND [ARGS]\n"
	"  bus add NAME [allow uid N | allow gid N | allow all] [max-guests N]\n"
	"               [max-handles N] [max-regions N] [max-shm BYTES]\n"
	"  bus del NAME\n"
	"  bus show [NAME]\n"
	"  dev add NAME class CLASS [attr KEY=VALUE | KEY=VALUE]... bus NAME [bus NAME]...\n"
	"  dev del NAME\n"
	"  dev show [NAME]\n"
	"  guest show\n"
	"  res show [qp|cq|mr|pd|ah|srq|mw]\n"
	"               each guest's device objects and the real ones behind them\n"
	"  vm add NAME bus BUS kernel FILE [initrd FILE] [append CMDLINE] [mem SIZE]\n"
	"               [cpus N] [vectors N] [conns N] [max-maps N] [max-pinned SIZE]\n"
	"               [accel auto|kvm|tcg] [net none|user|tap:IFNAME]\n"
	"               a QEMU VM on BUS (docs/vm.md); mem default 256M, vectors 16,\n"
	"               conns 8 (its connections on the bus at once, 1 to 64), max-maps\n"
	"               half of vm.max_map_count (vbusd's mappings its regions and MR\n"
	"               windows may hold; all VMs together at most that too), max-pinned\n"
	"               its mem (the bytes all its MRs together may pin)\n"
	"  vm del NAME\n"
	"  vm show [NAME]\n"
	"  vm notify NAME VECTOR   interrupt the VM on VECTOR\n"
	"  vm peek NAME GPA LEN    LEN (up to 256) bytes of the VM's RAM at guest-physical GPA\n"
	"  -j          JSON output\n"
	"  --run-dir   where vbusd's sockets are (default $VBUS_RUN_DIR or /run/vbus)\n"
	"  --timeout S give up when vbusd has not answered within S seconds (default\n"
	"              $VBUS_CTL_TIMEOUT, else 300; 0 waits for ever): exit 1, said on stderr\n"
	"Classes: echo (a test device), vrdma (attrs: backing=RXE port=N gid=INDEX\n"
	"         backend=kernel|relay|auto max-pinned=BYTES max-objects=N\n"
	"         qp-types=rc,uc,ud access=local-write,remote-write,remote-read,\n"
	"         remote-atomic,mw-bind mode=relay|passthrough\n"
	"         vm=kernel|kernel-thread|relay: how a kernel-backend device serves a VM's\n"
	"         processes, default kernel; kernel-thread rings its doorbell from a vbusd\n"
	"         thread instead of in the writer's context).\n";

int main(int argc, char **argv)
{
	const char *run_dir = getenv("VBUS_RUN_DIR"), *tmo = getenv("VBUS_CTL_TIMEOUT");
	long timeout_s = 300;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	static char buf[65536];
	size_t pos = 0;
	char json = 't';
	int i, fd, status;
	ssize_t n = -1;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-j"))
			json = 'j';
		else if (!strcmp(argv[i], "--run-dir") && i + 1 < argc)
			run_dir = argv[++i];
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			tmo = argv[++i];
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "vbusctl: unknown option '%s' (see --help)\n", argv[i]);
			return 2;
		}
	}
	if (i == argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (tmo && *tmo) {
		char *end;

		errno = 0;
		timeout_s = strtol(tmo, &end, 10);
		if (errno || *end || timeout_s < 0 || timeout_s > 86400) {
			fprintf(stderr, "vbusctl: --timeout takes 0 to 86400 seconds, not '%s'\n", tmo);
			return 2;
		}
	}
	for (int k = i; k < argc; k++)
		if (!strcmp(argv[k], "help") || !strcmp(argv[k], "--help")) {
			fputs(usage, stdout);
			return 0;
		}
	buf[pos++] = json;
	buf[pos++] = 0;
	for (; i < argc; i++) {
		size_t l = strlen(argv[i]) + 1;

		if (pos + l > sizeof(buf)) {
			fprintf(stderr, "vbusctl: command too long\n");
			return 2;
		}
		memcpy(buf + pos, argv[i], l);
		pos += l;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/ctl.sock", run_dir && *run_dir ? run_dir : "/run/vbus");
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		fprintf(stderr, "vbusctl: cannot reach vbusd at %s: %s\n", a.sun_path, strerror(errno));
		return 1;
	}
	if (timeout_s) {
		struct timeval tv = { .tv_sec = timeout_s };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (send(fd, buf, pos, 0) < 0 || (n = recv(fd, buf, sizeof(buf) - 1, 0)) <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			fprintf(stderr, "vbusctl: vbusd did not answer within %ld s (--timeout)\n", timeout_s);
		else
			fprintf(stderr, "vbusctl: vbusd did not answer (%s)\n", n == 0 ? "closed" : strerror(errno));
		return 1;
	}
	buf[n] = 0;
	status = atoi(buf);
	{
		char *body = strchr(buf, '\n');

		body = body ? body + 1 : buf + n;
		if (status) {
			fprintf(stderr, "vbusctl: %s\n", *body ? body : strerror(-status));
			return 1;
		}
		fputs(body, stdout);
	}
	return 0;
}
