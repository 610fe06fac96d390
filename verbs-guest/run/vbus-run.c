// SPDX-License-Identifier: MIT
/*
 * vbus-run: run an unmodified libibverbs program as a vbus guest (man page vbus-run(1)).
 *
 *   vbus-run [--bus NAME] [--run-dir DIR] [--show-real] [--no-hide] [-v] -- CMD [ARGS...]
 *
 * It preloads libvbus-verbs.so into CMD and, run as root, gives CMD a private mount
 * namespace whose /dev/infiniband is an empty tmpfs, so that it cannot reach the real
 * device around vbus. Then CMD replaces it: one exec per guest start. (It was a bash
 * script that exec'd a helper for the namespace: about 0.5 s a start in the TCG test VM,
 * where every exec costs about 0.1 s and every guest program starts through here.)
 *
 * Exit status: CMD's; 2 when vbus-run refuses (usage, library not found, a program the
 * loader would not preload into: static, setuid, setgid); 125 when the namespace cannot
 * be set up; 126/127 when CMD cannot be run / is not found at exec time.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define HIDDEN "/dev/infiniband"

static const char usage_text[] =
	"vbus-run: run an unmodified libibverbs program as a vbus guest.\n"
	"\n"
	"  vbus-run [--bus NAME] [--run-dir DIR] [--show-real] [--no-hide] [-v] -- CMD [ARGS...]\n"
	"\n"
	"CMD sees the vrdma devices of bus NAME (default: $VBUS_BUS, else \"default\") first in\n"
	"ibv_get_device_list(); its verbs go to vbusd through the bus, its data path through\n"
	"shared-memory rings. Real RDMA devices are hidden unless --show-real.\n"
	"  --bus NAME      the bus to attach to\n"
	"  --run-dir DIR   where vbusd's sockets are ($VBUS_RUN_DIR, else /run/vbus)\n"
	"  --show-real     list the host's real devices after the vbus ones\n"
	"  --no-hide       keep /dev/infiniband visible (by default, when run as root, CMD runs\n"
	"                  in a private mount namespace with an empty /dev/infiniband, so that it\n"
	"                  cannot reach the real device around vbus)\n"
	"  -v              log what the library does (VBUS_VERBS_LOG=2; 3 for debug)\n"
	"The library is $VBUS_VERBS_LIB, else ../lib/libvbus-verbs.so next to this program.\n"
	"Static, setuid and setgid programs cannot be run this way: vbus-run says so and exits 2.\n";

static __attribute__((format(printf, 2, 3), noreturn)) void die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("vbus-run: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static int is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The library: $VBUS_VERBS_LIB, else ../lib/ or ../lib/vbus/ beside this program. */
static const char *find_lib(char *buf, size_t len)
{
	const char *env = getenv("VBUS_VERBS_LIB");
	static const char *const rel[] = { "../lib/libvbus-verbs.so", "../lib/vbus/libvbus-verbs.so" };
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (env && *env)
		return is_file(env) ? env : NULL;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		if ((size_t)snprintf(buf, len, "%s/%s", self, rel[i]) < len && is_file(buf))
			return buf;
	}
	return NULL;
}

/* CMD as execvp would find it: as given when it holds a '/', else the first executable
 * regular file of that name in $PATH. */
static const char *find_cmd(const char *cmd, char *buf, size_t len)
{
	const char *path = getenv("PATH");

	if (strchr(cmd, '/'))
		return access(cmd, F_OK) == 0 ? cmd : NULL;
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t dl = strcspn(path, ":");

		if ((size_t)snprintf(buf, len, "%.*s%s%s", (int)dl, dl ? path : "", dl ? "/" : "", cmd) < len &&
		    is_file(buf) && access(buf, X_OK) == 0)
			return buf;
		path += dl;
		if (*path == ':')
			path++;
	}
	return NULL;
}

/* 1 when FILE is an ELF executable without an interpreter (PT_INTERP): statically
 * linked, so LD_PRELOAD cannot reach its libibverbs. 0 otherwise (scripts too). */
static int is_static_elf(const char *file)
{
	unsigned char buf[4096];
	const Elf64_Ehdr *eh = (const void *)buf;
	ssize_t n;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (n < (ssize_t)sizeof(*eh) || memcmp(buf, ELFMAG, SELFMAG) != 0)
		return 0;
	if (buf[EI_CLASS] != ELFCLASS64 || (eh->e_type != ET_EXEC && eh->e_type != ET_DYN))
		return 0;	/* (no 32-bit guests: the library is 64-bit) */
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > (size_t)n ||
	    eh->e_phnum > ((size_t)n - eh->e_phoff) / sizeof(Elf64_Phdr))
		return 0;	/* headers past the first page: let the loader judge */
	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const void *)(buf + eh->e_phoff + i * sizeof(Elf64_Phdr));

		if (ph->p_type == PT_INTERP)
			return 0;
	}
	return 1;
}

/* The private mount namespace: nothing mounted in it propagates back, and its
 * /dev/infiniband is an empty tmpfs (nodev: the placeholder nodes the library adds for
 * programs that look for one, UCX, open nothing). */
static void hide_devices(void)
{
	if (unshare(CLONE_NEWNS))
		die(125, "unshare(CLONE_NEWNS): %s (or run with --no-hide)", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		die(125, "making / private: %s", strerror(errno));
	if (mount("vbus-hide", HIDDEN, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0755"))
		die(125, "mounting an empty tmpfs on " HIDDEN ": %s", strerror(errno));
	/* The library puts an unopenable node per vrdma device there (verbs-guest/devnode.c). */
	setenv("VBUS_RUN_HIDDEN", HIDDEN, 1);
}

int main(int argc, char **argv)
{
	char libbuf[PATH_MAX], cmdbuf[PATH_MAX];
	const char *lib, *cmd, *pre;
	int hide = 1, i = 1;
	struct stat st;
	char *preload;

	for (; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--bus") || !strcmp(a, "--run-dir")) {
			if (i + 1 >= argc)
				die(2, "%s needs %s", a, a[2] == 'b' ? "a name" : "a directory");
			setenv(a[2] == 'b' ? "VBUS_BUS" : "VBUS_RUN_DIR", argv[++i], 1);
		} else if (!strncmp(a, "--bus=", 6)) {
			setenv("VBUS_BUS", a + 6, 1);
		} else if (!strncmp(a, "--run-dir=", 10)) {
			setenv("VBUS_RUN_DIR", a + 10, 1);
		} else if (!strcmp(a, "--show-real")) {
			setenv("VBUS_SHOW_REAL", "1", 1);
		} else if (!strcmp(a, "--no-hide")) {
			hide = 0;
		} else if (!strcmp(a, "-v")) {
			setenv("VBUS_VERBS_LOG", "2", 0);
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			return 0;
		} else if (!strcmp(a, "--")) {
			i++;
			break;
		} else if (a[0] == '-') {
			die(2, "unknown option '%s' (see --help)", a);
		} else {
			break;
		}
	}
	if (i >= argc)
		die(2, "no command given (see --help)");
	lib = find_lib(libbuf, sizeof(libbuf));
	if (!lib)
		die(2, "libvbus-verbs.so not found (build it with make, or set VBUS_VERBS_LIB)");
	if (strpbrk(lib, " :\t"))	/* LD_PRELOAD's separators */
		die(2, "%s: the library's path holds a space or ':', which LD_PRELOAD cannot carry", lib);
	cmd = find_cmd(argv[i], cmdbuf, sizeof(cmdbuf));
	if (!cmd)
		die(2, "%s: command not found", argv[i]);
	if (stat(cmd, &st) == 0 && S_ISREG(st.st_mode)) {
		if (st.st_mode & S_ISUID)
			die(2, "%s is setuid: the loader ignores LD_PRELOAD for it", cmd);
		if (st.st_mode & S_ISGID)
			die(2, "%s is setgid: the loader ignores LD_PRELOAD for it", cmd);
		if (is_static_elf(cmd))
			die(2, "%s is statically linked: its libibverbs cannot be interposed", cmd);
	}
	pre = getenv("LD_PRELOAD");
	if (asprintf(&preload, "%s%s%s", lib, pre && *pre ? " " : "", pre && *pre ? pre : "") < 0)
		die(125, "out of memory");
	setenv("LD_PRELOAD", preload, 1);
	free(preload);
	if (hide && geteuid() == 0 && stat(HIDDEN, &st) == 0 && S_ISDIR(st.st_mode))
		hide_devices();
	execvp(cmd, argv + i);	/* (a path: no search; a script without #! runs under sh) */
	fprintf(stderr, "vbus-run: %s: %s\n", cmd, strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
