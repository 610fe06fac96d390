// SPDX-License-Identifier: MIT
/*
 * The bus connection (one per process) and the vbus devices on it.
 *
 * The bus is $VBUS_BUS (vbus-run sets it; default "default") under $VBUS_RUN_DIR (default
 * /run/vbus); in a vbus VM (no such socket, a /dev/vbus-vm0; or $VBUS_VM_DEV) the VM's
 * device of that bus, by default the VM's own bus (vbus_connect, docs/vm.md). The
 * connection is made on the first ibv_get_device_list(); if the bus cannot be reached,
 * one line says why and the program sees no vbus device. Each later ibv_get_device_list()
 * enumerates the bus again, as rdma-core reads sysfs again: a device added since is listed,
 * one removed is not (docs/abi.md, "Hot add"). Devices are allocated once per name and never
 * freed: librdmacm compares device pointers across calls, and a device that comes back
 * under its old name gets its old pointer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vbg.h"

static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vbus_conn *conn;
static bool tried;
static struct vbg_device *devs[VBG_MAX_KNOWN];	/* every device seen, by first sight */
static int ndevs;
static struct vbg_device *cur[VBG_MAX_DEVICES];		/* those of the last enumeration */
static int ncur;
static bool enum_failed;				/* the last DEVENUM failed (logged) */

/* The bus asked for: NULL for the default ("default", or a VM's own bus). */
static const char *bus_asked(void)
{
	const char *b = getenv("VBUS_BUS");

	return b && *b ? b : NULL;
}

static const char *bus_name(void)
{
	return conn ? vbus_conn_bus(conn) : bus_asked() ? bus_asked() : "default";
}

static struct vbg_device *device_new(const struct vbus_dev_entry *e)
{
	struct vbg_device *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	snprintf(d->bus_name, sizeof(d->bus_name), "%.31s", e->name);
	/* The name the program sees is the vbus device name (vrdma0). */
	snprintf(d->dev.name, sizeof(d->dev.name), "%.63s", e->name);
	snprintf(d->dev.dev_name, sizeof(d->dev.dev_name), "vbus-%.58s", e->name);
	snprintf(d->dev.dev_path, sizeof(d->dev.dev_path), "/sys/class/infiniband_verbs/vbus-%.31s",
		 e->name);
	snprintf(d->dev.ibdev_path, sizeof(d->dev.ibdev_path), "/sys/class/infiniband/%.31s",
		 e->name);
	d->dev.node_type = IBV_NODE_CA;
	d->dev.transport_type = IBV_TRANSPORT_IB;
	return d;
}

/* Under conn_lock: the known device of that name, or a new one (NULL when none can be). */
static struct vbg_device *device_of(const struct vbus_dev_entry *e)
{
	struct vbg_device *d;

	for (int i = 0; i < ndevs; i++)
		if (!strncmp(devs[i]->bus_name, e->name, sizeof(devs[i]->bus_name)))
			return devs[i];
	if (ndevs == VBG_MAX_KNOWN) {
		vbg_err("bus '%s': %d devices seen already: '%.31s' is not listed", bus_name(),
			VBG_MAX_KNOWN, e->name);
		return NULL;
	}
	d = device_new(e);
	if (d) {
		devs[ndevs] = d;
		/* After the slot: vbg_is_device reads devs[] without the lock. */
		__atomic_store_n(&ndevs, ndevs + 1, __ATOMIC_RELEASE);
		vbg_devnodes_make(&d, 1);
	}
	return d;
}

/* Under conn_lock, connected: the vrdma devices on the bus now, into cur[]. On an error
 * the last list stays. */
static void enumerate(void)
{
	struct vbus_dev_entry e[VBG_MAX_KNOWN];
	struct vbg_device *d;
	int n, k = 0;

	n = vbus_devenum(conn, e, (int)(sizeof(e) / sizeof(e[0])));
	if (n < 0) {
		/* Once per run of failures: a program may list devices in a loop. */
		if (!enum_failed)
			vbg_err("DEVENUM on bus '%s': %s", bus_name(), strerror(-n));
		enum_failed = true;
		return;
	}
	enum_failed = false;
	for (int i = 0; i < n && k < VBG_MAX_DEVICES; i++) {
		if (strcmp(e[i].devclass, VRDMA_CLASS_NAME))
			continue;
		d = device_of(&e[i]);
		if (!d)
			continue;
		/* Back after a removal: its GUID is learnt again (the backing may differ). */
		if (!d->listed)
			__atomic_store_n(&d->guid_known, false, __ATOMIC_RELEASE);
		cur[k++] = d;
	}
	for (int i = 0; i < ndevs; i++)
		devs[i]->listed = false;
	for (int i = 0; i < k; i++)
		cur[i]->listed = true;
	ncur = k;
}

/* Connect and enumerate, once. Called with conn_lock held. true when it enumerated now. */
static bool connect_once(void)
{
	int err;

	if (tried)
		return false;
	tried = true;
	err = vbus_connect(NULL, bus_asked(), &conn);
	if (err) {
		const char *dev = getenv("VBUS_VM_DEV");

		conn = NULL;
		if (vbus_connect_uses_vm(NULL, bus_asked()))
			vbg_err("cannot attach to %s%s%s through %s: %s%s",
				bus_asked() ? "bus '" : "the VM's bus", bus_asked() ? bus_asked() : "",
				bus_asked() ? "'" : "", dev && *dev ? dev : "this VM's /dev/vbus-vmN",
				strerror(-err), err == -EBUSY ?
				" (every connection of the VM is taken: vbusctl vm add ... conns N)" : "");
		else
			vbg_err("cannot attach to bus '%s' in %s: %s", bus_name(), vbus_run_dir(),
				strerror(-err));
		return false;
	}
	if (vbus_conn_is_vm(conn)) {
		/* No descriptor crosses into a VM: no call channel (docs/vm.md). */
		vbg_info("bus '%s' through the VM's device: calls go over its message channel",
			 bus_name());
	} else if ((err = vbus_callchan_open(conn, 8))) {
		/* the socket still works: slower calls, not fewer */
		vbg_info("no call channel (%s): calls go over the socket", strerror(-err));
	}
	enumerate();
	vbg_info("bus '%s': %d vrdma device(s)", bus_name(), ncur);
	return true;
}

struct vbus_conn *vbg_conn(void)
{
	struct vbus_conn *c;

	pthread_mutex_lock(&conn_lock);
	connect_once();
	c = conn;
	pthread_mutex_unlock(&conn_lock);
	return c;
}

int vbg_devices(struct vbg_device **out)
{
	int n;

	pthread_mutex_lock(&conn_lock);
	if (!connect_once() && conn)
		enumerate();
	n = ncur;
	for (int i = 0; i < n; i++)
		out[i] = cur[i];
	pthread_mutex_unlock(&conn_lock);
	return n;
}

bool vbg_is_device(const struct ibv_device *dev)
{
	/* devs[] only grows; a slot is written before ndevs counts it (device_of). */
	int n = __atomic_load_n(&ndevs, __ATOMIC_ACQUIRE);

	for (int i = 0; i < n; i++)
		if (&devs[i]->dev == dev)
			return true;
	return false;
}
