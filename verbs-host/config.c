// SPDX-License-Identifier: MIT
/*
 * The config file: one vbusctl command per line without the word "vbusctl"
 * ("bus add tenant1 allow uid 1000", "dev add echo0 class echo bus tenant1");
 * '#' starts a comment. A bad line stops the daemon with the line number.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "vbusd.h"

int vbd_config_load(const char *path)
{
	char line[1024], msg[512];
	FILE *f = fopen(path, "r");
	int lineno = 0;

	if (!f) {
		vbd_err("cannot read config %s: %s", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *argv[64], *save = NULL, *t;
		int argc = 0, r;

		lineno++;
		if ((t = strchr(line, '#')))
			*t = 0;
		for (t = strtok_r(line, " \t\r\n", &save); t && argc < 64;
		     t = strtok_r(NULL, " \t\r\n", &save))
			argv[argc++] = t;
		if (!argc)
			continue;
		r = vbd_command(argc, argv, false, msg, sizeof(msg));
		if (r) {
			vbd_err("%s:%d: %s", path, lineno, msg);
			fclose(f);
			return r;
		}
	}
	fclose(f);
	return 0;
}
