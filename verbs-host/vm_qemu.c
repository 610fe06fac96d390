// SPDX-License-Identifier: MIT
/*
 * Starting QEMU for a VM (docs/vm.md, "Machine layout"): the command line, the choice of
 * KVM or TCG, and the fork/exec that hands QEMU exactly two descriptors of vbusd's:
 *   3  the VM's RAM memfd (memory-backend-file on /proc/self/fd/3, share=on)
 *   4  the connector's descriptor (ivshmem: its end of the server's socket pair)
 * Debian's qemu-system-x86_64 7.2, unpatched.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "vbusd.h"
#include "vm.h"

#define QEMU_NAME	"qemu-system-x86_64"
#define FD_RAM		3
#define FD_CONNECTOR	4

int vbd_argv_add(struct vbd_argv *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (a->n + 1 >= (int)(sizeof(a->v) / sizeof(a->v[0])))
		return -E2BIG;
	va_start(ap, fmt);
	n = vsnprintf(a->buf + a->used, sizeof(a->buf) - a->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(a->buf) - a->used)
		return -E2BIG;
	a->v[a->n++] = a->buf + a->used;
	a->v[a->n] = NULL;
	a->used += (size_t)n + 1;
	return 0;
}

/* The full path of QEMU in $PATH (VBUS_QEMU overrides it), or -ENOENT. */
static int qemu_path(char *out, size_t n)
{
	const char *env = getenv("VBUS_QEMU"), *path = getenv("PATH");
	char dirs[1024], *save = NULL;

	if (env && *env) {
		snprintf(out, n, "%s", env);
		return access(out, X_OK) ? -ENOENT : 0;
	}
	snprintf(dirs, sizeof(dirs), "%s", path && *path ? path : "/usr/bin:/bin");
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, n, "%s/%s", d, QEMU_NAME);
		if (!access(out, X_OK))
			return 0;
	}
	return -ENOENT;
}

static long pidfd_open_(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

/*
 * fork and exec path with argv; fds[i] becomes descriptor 3 + i in the child, nothing
 * else of vbusd's stays open; stdin is /dev/null, stdout and stderr go to out_path. The
 * child gets a session of its own and default signal handling. *pid and *pidfd on 0.
 */
static int spawn(const char *path, char **argv, const int *fds, int nfds, const char *out_path,
		 pid_t *pid, int *pidfd)
{
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), err;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int high[4];
	pid_t p;

	if (out < 0 || null < 0 || nfds > 4) {
		err = nfds > 4 ? -EINVAL : -errno;
		goto err_close;
	}
	p = fork();
	if (p < 0) {
		err = -errno;
		goto err_close;
	}
	if (p == 0) {	/* async-signal-safe calls only from here */
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		sigaction(SIGPIPE, &dfl, NULL);	/* vbusd ignores it; QEMU expects the default */
		setsid();
		/* Out of the way of 0..3+nfds first, so that no dup2 clobbers a source. */
		for (int i = 0; i < nfds; i++)
			if ((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64)) < 0)
				_exit(127);
		if (dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		for (int i = 0; i < nfds; i++)
			if (dup2(high[i], 3 + i) < 0)	/* dup2 clears FD_CLOEXEC */
				_exit(127);
		syscall(SYS_close_range, 3 + nfds, ~0U, 0);
		execv(path, argv);
		_exit(127);
	}
	close(out);
	close(null);
	*pid = p;
	*pidfd = (int)pidfd_open_(p);
	if (*pidfd < 0) {
		err = -errno;
		kill(p, SIGKILL);
		waitpid(p, NULL, 0);
		return err;
	}
	return 0;

err_close:
	if (out >= 0)
		close(out);
	if (null >= 0)
		close(null);
	return err;
}

/* Wait at most ms for the process behind pidfd to end: its status, or -ETIMEDOUT. */
static int wait_exit(pid_t pid, int pidfd, int ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	int st;

	if (poll(&p, 1, ms) <= 0)
		return -ETIMEDOUT;
	if (waitpid(pid, &st, 0) != pid)
		return -errno;
	return st;
}

/* Stop a QEMU: SIGTERM (QEMU exits cleanly on it), SIGKILL after grace_ms. Reaps it and
 * closes pidfd. Its wait status. */
int vbd_vm_kill(pid_t pid, int pidfd, int grace_ms)
{
	int st;

	kill(pid, SIGTERM);
	st = wait_exit(pid, pidfd, grace_ms);
	if (st == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		st = wait_exit(pid, pidfd, -1);
	}
	close(pidfd);
	return st;
}

/* The common start of every QEMU command line. */
static int qemu_base(struct vbd_argv *a, const char *qemu, const char *accel, uint64_t mem,
		     uint32_t cpus)
{
	bool kvm = !strcmp(accel, "kvm");

	return vbd_argv_add(a, "%s", qemu) || vbd_argv_add(a, "-nodefaults") ||
	       vbd_argv_add(a, "-no-reboot") || vbd_argv_add(a, "-display") ||
	       vbd_argv_add(a, "none") || vbd_argv_add(a, "-monitor") || vbd_argv_add(a, "none") ||
	       vbd_argv_add(a, "-nic") || vbd_argv_add(a, "none") || vbd_argv_add(a, "-accel") ||
	       vbd_argv_add(a, kvm ? "kvm" : "tcg,thread=multi") || vbd_argv_add(a, "-cpu") ||
	       vbd_argv_add(a, kvm ? "host" : "max") || vbd_argv_add(a, "-smp") ||
	       vbd_argv_add(a, "%u", cpus) || vbd_argv_add(a, "-m") ||
	       vbd_argv_add(a, "%lluM", (unsigned long long)(mem >> 20)) ? -E2BIG : 0;
}

/*
 * KVM is used only when a short boot of the VM's own kernel under it ends: /dev/kvm can
 * exist and still hang a guest right after the kernel decompresses (softroce/vbus-softroce
 * probes the same way). The kernel is given no root and no init: it panics, panic=-1
 * reboots it and -no-reboot ends QEMU. The answer is kept for this boot of the host: in
 * this vbusd, and in vbd_kvm_probe_file when one is given (--kvm-probe), a line
 * "BOOT-ID ok|hang|no-dev" that vbus-softroce's cache shares, so that the probe's 15 s
 * are paid once per host boot, not once per vbusd.
 */
const char *vbd_kvm_probe_file;

/* The answer kept in the file for this boot: 1 works, 0 not, -1 none kept. */
static int probe_file_read(const char *boot)
{
	char line[64] = "";
	FILE *f;

	if (!vbd_kvm_probe_file || !*boot || !(f = fopen(vbd_kvm_probe_file, "re")))
		return -1;
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	if (strncmp(line, boot, strlen(boot)) || line[strlen(boot)] != ' ')
		return -1;
	return !strncmp(line + strlen(boot) + 1, "ok", 2);
}

/* Keep the answer (a temporary file renamed over the old: readers see one or the other). */
static void probe_file_write(const char *boot, const char *what)
{
	char tmp[300];
	FILE *f;

	if (!vbd_kvm_probe_file || !*boot ||
	    snprintf(tmp, sizeof(tmp), "%s.%d", vbd_kvm_probe_file, (int)getpid()) >=
		    (int)sizeof(tmp) || !(f = fopen(tmp, "we")))
		return;
	fprintf(f, "%s %s\n", boot, what);
	if (fclose(f) || rename(tmp, vbd_kvm_probe_file)) {
		vbd_warn("vm: cannot keep the KVM probe's answer in %s: %s", vbd_kvm_probe_file,
			 strerror(errno));
		unlink(tmp);
	}
}

static int probe_kvm(const char *kernel)
{
	static char cached_boot[40];
	static bool cached_ok;
	char boot[40] = "", qemu[256], out[200];
	struct vbd_argv a = { 0 };
	int fd, st, pidfd, kept;
	pid_t pid;

	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, boot, sizeof(boot) - 1);

		boot[n > 0 ? n : 0] = 0;
		boot[strcspn(boot, "\n")] = 0;
		close(fd);
	}
	if (cached_boot[0] && !strcmp(cached_boot, boot))
		return cached_ok;
	snprintf(cached_boot, sizeof(cached_boot), "%s", boot);
	kept = probe_file_read(boot);
	if (kept >= 0) {
		cached_ok = kept;
		vbd_info("vm: KVM %s (kept in %s for this boot)",
			 cached_ok ? "works" : "does not work here, TCG", vbd_kvm_probe_file);
		return cached_ok;
	}
	cached_ok = false;
	if (access("/dev/kvm", R_OK | W_OK)) {
		probe_file_write(boot, "no-dev");
		return false;
	}
	if (qemu_path(qemu, sizeof(qemu)))
		return false;
	snprintf(out, sizeof(out), "%s/vm/kvm-probe.log", vbd.run_dir);
	if (qemu_base(&a, qemu, "kvm", 128 << 20, 1) || vbd_argv_add(&a, "-serial") ||
	    vbd_argv_add(&a, "null") || vbd_argv_add(&a, "-kernel") || vbd_argv_add(&a, "%s", kernel) ||
	    vbd_argv_add(&a, "-append") ||
	    vbd_argv_add(&a, "panic=-1 root=/dev/vbus-kvm-probe rdinit=/vbus-kvm-probe"))
		return false;
	if (spawn(qemu, a.v, NULL, 0, out, &pid, &pidfd))
		return false;
	/* Not scaled: a kernel that works under KVM panics within a second or two, and a
	 * probe cut short only costs TCG (vbus-softroce's probe has the same 15 s). */
	st = wait_exit(pid, pidfd, 15000);
	if (st == -ETIMEDOUT)
		st = vbd_vm_kill(pid, pidfd, 0);
	else
		close(pidfd);
	cached_ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	probe_file_write(boot, cached_ok ? "ok" : "hang");
	vbd_info("vm: KVM %s (a probe boot of %s)", cached_ok ? "works" : "does not work here, TCG",
		 kernel);
	return cached_ok;
}

int vbd_vm_pick_accel(struct vbd_vm *vm)
{
	if (!strcmp(vm->accel, "auto"))
		snprintf(vm->accel, sizeof(vm->accel), "%s", probe_kvm(vm->kernel) ? "kvm" : "tcg");
	return 0;
}

/* Its NIC, after qemu_base's `-nic none` (which only drops the default one): virtio-net on
 * QEMU's user-mode network, or on the host's tap IFNAME (no script: the host bridges it). */
static int qemu_nic(struct vbd_argv *a, const struct vbd_vm *vm)
{
	char mac[VBD_VM_MAC_STR];

	vbd_vm_mac_str(vm, mac);
	if (!strcmp(vm->net, "user"))
		return vbd_argv_add(a, "-nic") ||
		       vbd_argv_add(a, "user,model=virtio-net-pci,mac=%s", mac);
	if (!strncmp(vm->net, "tap:", 4))
		return vbd_argv_add(a, "-nic") ||
		       vbd_argv_add(a, "tap,ifname=%s,script=no,downscript=no,model=virtio-net-pci,"
				    "mac=%s", vm->net + 4, mac);
	return 0;
}

int vbd_vm_spawn(struct vbd_vm *vm, char *err, size_t errn)
{
	struct vbd_argv a = { 0 };
	char qemu[256];
	int fds[2] = { vm->ram_fd, -1 }, r;

	r = qemu_path(qemu, sizeof(qemu));
	if (r) {
		snprintf(err, errn, "no %s in PATH (apt-get install qemu-system-x86)", QEMU_NAME);
		return r;
	}
	r = qemu_base(&a, qemu, vm->accel, vm->mem, vm->cpus);
	if (!r)
		r = vbd_argv_add(&a, "-name") || vbd_argv_add(&a, "vbus-%s", vm->name) ||
		    vbd_argv_add(&a, "-object") ||
		    vbd_argv_add(&a, "memory-backend-file,id=vbus-ram,size=%llu,share=on,"
				 "mem-path=/proc/self/fd/%d", (unsigned long long)vm->mem, FD_RAM) ||
		    vbd_argv_add(&a, "-machine") || vbd_argv_add(&a, "q35,memory-backend=vbus-ram") ||
		    vbd_argv_add(&a, "-serial") || vbd_argv_add(&a, "file:%s", vm->console) ||
		    vbd_argv_add(&a, "-kernel") || vbd_argv_add(&a, "%s", vm->kernel) ||
		    (vm->initrd && (vbd_argv_add(&a, "-initrd") ||
				    vbd_argv_add(&a, "%s", vm->initrd))) ||
		    (vm->append && (vbd_argv_add(&a, "-append") ||
				    vbd_argv_add(&a, "%s", vm->append))) ||
		    qemu_nic(&a, vm) ? -E2BIG : 0;
	if (!r)
		r = vm->conn->qemu_args(vm, FD_CONNECTOR, &a, &fds[1]);
	if (r) {
		snprintf(err, errn, "QEMU's command line is too long");
		return r;
	}
	r = spawn(qemu, a.v, fds, 2, vm->log, &vm->pid, &vm->pidfd);
	if (r) {
		snprintf(err, errn, "cannot start %s: %s", qemu, strerror(-r));
		return r;
	}
	vm->conn->started(vm);
	vbd_info("vm %s: QEMU pid %d (%s, %u vCPUs, %llu MiB) on bus %s", vm->name, (int)vm->pid,
		 vm->accel, vm->cpus, (unsigned long long)(vm->mem >> 20), vm->bus);
	return 0;
}
