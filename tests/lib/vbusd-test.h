/* SPDX-License-Identifier: MIT */
/*
 * What the tests that drive a real vbusd share: a private run directory, starting vbusd
 * (from $VBUS_BUILD/bin) with its log in that directory, vbusctl, clean-up that kills the
 * daemon and fails the test on a sanitizer report in its log, and small clocks. Time
 * limits scale with the machine (vt-time.h).
 * Include it once, in the test's only source file; it defines fail() and check().
 */
#ifndef VBUS_TESTS_VBUSD_TEST_H
#define VBUS_TESTS_VBUSD_TEST_H

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "vt-time.h"

/* Each test uses some of these. */
#define VT_FN static __attribute__((unused))

static char run_dir[64], bin[512], logpath[128];
static pid_t daemon_pid;
/* More environment for the vbusds start_daemon starts from now on: "NAME=value". */
static char *daemon_env[8];
static void cleanup(void);

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); \
			printf("\n"); cleanup(); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

/* A sanitizer report in vbusd's log: 1 if there is one (and it is printed). */
VT_FN int daemon_log_bad(void)
{
	char line[512];
	int bad = 0;
	FILE *f = fopen(logpath, "r");

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "Sanitizer") || strstr(line, "runtime error:")) {
			if (!bad++)
				printf("FAIL: vbusd's log (%s) has a sanitizer report:\n", logpath);
			if (bad < 20)
				printf("  %s", line);
		}
	if (f)
		fclose(f);
	return bad > 0;
}

/* Kill vbusd, remove the run directory (kept with VBUS_TEST_KEEP or a bad log). */
VT_FN void cleanup(void)
{
	char cmd[256];

	if (daemon_pid > 0) {
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = 0;
	}
	if (daemon_log_bad() || getenv("VBUS_TEST_KEEP") || !run_dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", run_dir);
	if (system(cmd))
		return;
}

/* The run directory (readable by other uids, for access-list tests) and the binaries.
 * Returns 0, or 77 after saying why when vbusd is not built. */
VT_FN int vt_setup(const char *name)
{
	const char *b = getenv("VBUS_BUILD");
	char path[600];

	snprintf(bin, sizeof(bin), "%s/bin", b && *b ? b : "build/default");
	snprintf(path, sizeof(path), "%s/vbusd", bin);
	if (access(path, X_OK)) {
		printf("no %s: build first (make), or set VBUS_BUILD\n", path);
		return 77;
	}
	snprintf(run_dir, sizeof(run_dir), "/tmp/vbus-%s.XXXXXX", name);
	check(mkdtemp(run_dir) && !chmod(run_dir, 0755), "mkdtemp");
	snprintf(logpath, sizeof(logpath), "%s/vbusd.log", run_dir);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

VT_FN void start_daemon(void)
{
	char path[600], sock[128];

	snprintf(path, sizeof(path), "%s/vbusd", bin);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", run_dir);
	unlink(sock);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(fd, 2);
		for (int i = 0; i < 8 && daemon_env[i]; i++)
			putenv(daemon_env[i]);
		execl(path, "vbusd", "--run-dir", run_dir, "-v", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < (int)vt_secs(300) && access(sock, F_OK); i++)	/* 3 s, scaled */
		usleep(10000);
	check(!access(sock, F_OK), "vbusd did not start (see %s)", logpath);
}

/* vbusctl with our run dir; its output in out (if given); its exit status. */
static int ctl(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
VT_FN int ctl(char *out, size_t n, const char *fmt, ...)
{
	char args[512], cmd[1400];
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "timeout %u %s/vbusctl --run-dir %s %s 2>&1",
		 vt_alarm_secs(10), bin, run_dir, args);
	p = popen(cmd, "r");
	check(p, "popen");
	if (out) {
		size_t got = fread(out, 1, n - 1, p);

		out[got] = 0;
	} else {
		char sink[4096];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

VT_FN double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time (user + system) a process has used, from /proc/PID/stat. */
VT_FN double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	check(f, "open %s", path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');	/* the command name may hold spaces */
	check(p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			  &ut, &st) == 2, "parse %s", path);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

#endif
