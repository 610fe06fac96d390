/* SPDX-License-Identifier: MIT */
/*
 * vbusd internals: the bus model (buses, device classes, devices, guests), the guest
 * connections and the control commands. Functions return 0 or a negative errno.
 *
 * Locking: vbd.lock guards the model (lists of buses, devices, guests). Each guest has
 * g->lock, held while one of its requests runs (its requests are serialized), and
 * g->send_lock around writes to its socket, g->slots_lock around changes of its slot
 * table. Order: vbd.lock, then g->lock, then g->slots_lock, then g->send_lock. A guest thread never takes vbd.lock while it holds g->lock.
 */
#ifndef VBUSD_H
#define VBUSD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <vbus/proto.h>
#include "ring.h"
#include "vm_ram.h"

/* ---- logging ---- */
enum { VBD_ERR, VBD_WARN, VBD_INFO, VBD_DEBUG };
extern int vbd_verbosity;
extern bool vbd_syslog;
void vbd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define vbd_err(...) vbd_log(VBD_ERR, __VA_ARGS__)
#define vbd_warn(...) vbd_log(VBD_WARN, __VA_ARGS__)
#define vbd_info(...) vbd_log(VBD_INFO, __VA_ARGS__)
#define vbd_dbg(...) vbd_log(VBD_DEBUG, __VA_ARGS__)

struct vbd_dev;
struct vbd_guest;

/* A device class: a kind of device, named by string, with its operations. */
struct vbd_class {
	const char *name;
	/* A device of this class is created: check its attributes, set d->priv. On failure
	 * it may write a one-line reason into err, which `vbusctl dev add` prints. */
	int (*dev_init)(struct vbd_dev *d, char *err, size_t errn);
	void (*dev_fini)(struct vbd_dev *d);
	/* A guest opens the device (its handle on this connection is `handle`). */
	int (*open)(struct vbd_dev *d, struct vbd_guest *g, uint32_t handle, void **inst);
	void (*close)(void *inst);
	/* A DEVCALL. in is a private copy; out has outmax bytes. */
	int (*call)(void *inst, uint32_t fn, const void *in, size_t inlen, void *out,
		    size_t outmax, size_t *outlen);
	/* Optional: hand over the instance's kernel descriptor (VBUS_OP_DEVFD, docs/abi.md).
	 * On 0, *fd is the bus's: it sends it to the guest and closes it. -EOPNOTSUPP when
	 * the instance has none. Called under the guest's lock, like call. */
	int (*devfd)(void *inst, int *fd);
	/* Optional: make a call running on inst return soon (-ECANCELED): the device is
	 * going, or the guest, or the daemon. Called under the guest's slots_lock. */
	void (*cancel)(void *inst);
	/* Optional: one line of per-instance resources for `vbusctl guest show` (JSON). */
	int (*show)(void *inst, char *buf, size_t n);
	/* Optional: quotas refused inside the device model rather than by vbusd (the kernel
	 * module's max-objects and max-pinned), for `guest show`: how many, and which (a
	 * static name). 0, or -errno when they cannot be read. */
	int (*quota_hits)(void *inst, uint64_t *hits, const char **which);
	/* Optional: the instance's objects for `vbusctl res show [KIND]`: JSON members
	 * ("counters":{..},"objects":[..]) or text lines. 0 or -ENOSPC. */
	int (*res)(void *inst, const char *kind, bool json, char *buf, size_t n);
	/* Optional: what the instance's holder handed on to guests of its own (passthrough
	 * child functions, and theirs: docs/nesting.md), for `guest show` and `res show`: a
	 * JSON array, or text lines each starting with indent. 0 with buf empty when there is
	 * none; -ENOSPC, or -errno when it cannot be read. */
	int (*tree)(void *inst, bool json, const char *indent, char *buf, size_t n);
	/* Optional: a child function of the instance for a connection of its own
	 * (VBUS_OP_CHILD, docs/abi.md): check in's limits against the instance's, then either
	 * set *token (the bus makes the child connection, whose open of the device the class
	 * then serves with that token: vbd_guest.child) or *fd (a child connection made
	 * elsewhere, e.g. by the bus below a middle level, handed on as it is, with its bus's
	 * name and its device's in *o). Under the guest's lock. child_put drops a token. */
	int (*child)(void *inst, const struct vbus_child_in *in, int *fd,
		     struct vbus_child_out *o, void **token);
	void (*child_put)(void *token);
	/* Optional: the guest revokes its region or signal `id` (type VBD_REGION or
	 * VBD_SIGNAL), which the instance holds (vbd_guest_region): 0 once the instance let it
	 * go, -ENOENT when it does not hold it, -EBUSY while it still needs it. */
	int (*release)(void *inst, int type, uint32_t id);
	/* Optional: true when what is behind d has gone (a backing RDMA device was
	 * unregistered). Polled about once a second by the main loop, which then removes d
	 * as `dev del` does: its guests are told, their instances closed. */
	bool (*gone)(struct vbd_dev *d);
};

const struct vbd_class *vbd_class_find(const char *name);
extern const struct vbd_class vbd_class_echo;
extern const struct vbd_class vbd_class_vrdma;

#define VBD_MAX_ATTRS 12
#define VBD_MAX_DEV_BUSES 8

struct vbd_bus {
	struct vbd_bus *next;
	char name[VBUS_NAME_MAX];
	int listen_fd;
	char path[108];
	bool allow_all;
	uid_t allow_uid[8];
	gid_t allow_gid[8];
	int n_uid, n_gid;
	uint32_t max_guests, max_handles, max_regions;	/* per guest */
	uint64_t max_shm_bytes;				/* per guest */
	uint32_t bus_max_handles;			/* all guests of the bus together */
	uint64_t bus_max_shm;
	uint32_t n_guests;
	uint32_t n_handles;				/* totals, under vbd.lock */
	uint64_t shm_bytes;
};

struct vbd_dev {
	struct vbd_dev *next;
	char name[VBUS_NAME_MAX];
	const struct vbd_class *cls;
	char attr_key[VBD_MAX_ATTRS][32];
	char attr_val[VBD_MAX_ATTRS][64];
	int n_attrs;
	struct vbd_bus *buses[VBD_MAX_DEV_BUSES];
	int n_buses;
	uint32_t n_open;
	void *priv;
};

const char *vbd_dev_attr(const struct vbd_dev *d, const char *key);
/* Set (replace or add) an attribute, e.g. a value the class resolved: 0 or -E2BIG. */
int vbd_dev_set_attr(struct vbd_dev *d, const char *key, const char *val);

/* A guest's handle: a device instance, a shared region or a signal. */
enum vbd_obj { VBD_FREE = 0, VBD_HANDLE, VBD_REGION, VBD_SIGNAL };

struct vbd_slot {
	enum vbd_obj type;
	/* VBD_HANDLE */
	struct vbd_dev *dev;		/* NULL once the device is removed */
	void *inst;
	char *label;			/* its DEVOPEN's label (label.c), or NULL */
	/* VBD_REGION / VBD_SIGNAL */
	int fd;
	void *base;
	uint64_t size;
	uint32_t direction;
	uint32_t pins;			/* device objects using it: cannot be revoked */
	uint64_t *pages;		/* a VM's region (VBUS_SHM_F_GPA): each 4096-byte
					 * page's offset in fd (the VM's RAM); NULL: a memfd
					 * mapped whole from offset 0 */
	uint64_t nmaps;			/* with pages: the VM's mappings it holds (vm_maps.c) */
	uint32_t gen;			/* generation: the upper bits of the handle or id */
	uint32_t vector;		/* a VM's signal (VBUS_SIG_F_VECTOR): its vector; else 0 */
	/* VBD_HANDLE: our ends of the child connections made of it (VBUS_OP_CHILD), shut
	 * down when the handle closes or its device goes */
	int *kids;
	uint32_t nkids;
};

#define VBD_MAX_KIDS 64		/* child connections of one handle at a time */

/* A child connection (VBUS_OP_CHILD): made of handle `parent_handle` of guest `parent_id`;
 * only device `dev` opens on it, served by its class with `token`. */
struct vbd_guest_child {
	uint32_t parent_id, parent_handle;
	char dev[VBUS_NAME_MAX];
	const struct vbd_class *cls;
	void *token;
};

/* label.c: DEVOPEN labels (struct vbus_devopen_label_in). check: 0 for a well-formed label
 * in s[0..n) (or an empty one), else -EINVAL. compose: out = "ID:PID" of one of our guests,
 * then "/" and `sub` (that guest's own label) when there is one; -E2BIG (out holds our
 * guest alone) when together they are longer or deeper than a label holds. show: a label as
 * "guest ID pid PID / ..." or, with json, [{"guest":ID,"pid":PID},...]. */
struct strbuf;
int vbd_label_check(const char *s, size_t n);
int vbd_label_compose(char out[VBUS_LABEL_MAX], uint32_t id, int pid, const char *sub);
void vbd_label_show(struct strbuf *o, const char *label, bool json);
/* guest.c: the label the DEVOPEN of `handle` carried, or NULL; for a class's open (valid
 * until the handle is closed) */
const char *vbd_handle_label(struct vbd_guest *g, uint32_t handle);

#define VBD_MAX_SLOTS (1u << VBUS_ID_INDEX_BITS)
#define VBD_SLOT_CHUNK 256

/* vm_sig.c: a VM's interrupt vectors as signals (docs/vm.md, "Signals"), counted. new
 * copies the eventfds of each vector's doorbell and interrupt; take gives a free vector
 * (never 0) to a signal of that direction, with a new copy of its eventfd in *fd (-ENOSPC:
 * none free); give returns it; taken: whether a TO_HOST vector's doorbell is a signal's
 * (the VM's thread does not read it then). */
struct vbd_vm_sigs;
struct vbd_vm_sigs *vbd_vm_sigs_new(uint32_t vectors, const int *doorbell, const int *interrupt);
struct vbd_vm_sigs *vbd_vm_sigs_get(struct vbd_vm_sigs *s);
void vbd_vm_sigs_put(struct vbd_vm_sigs *s);
int vbd_vm_sig_take(struct vbd_vm_sigs *s, uint32_t direction, uint32_t *vector, int *fd);
void vbd_vm_sig_give(struct vbd_vm_sigs *s, uint32_t direction, uint32_t vector);
bool vbd_vm_sig_taken(const struct vbd_vm_sigs *s, uint32_t direction, uint32_t vector);

/* vm_maps.c: a VM's budget of vbusd's mappings, one per run of its pages in a region or an
 * MR window (docs/vm.md, "Mappings"), shared by its connections. take: 0 (m NULL: not a
 * VM's, nothing counted), or -EDQUOT with the quota's name and limit (the VM's max-maps,
 * or all VMs' half of vm.max_map_count). */
struct vbd_vm_maps;
struct vbd_vm_maps *vbd_vm_maps_new(uint64_t max, uint64_t max_pinned);
struct vbd_vm_maps *vbd_vm_maps_get(struct vbd_vm_maps *m);
void vbd_vm_maps_put(struct vbd_vm_maps *m);
int vbd_vm_maps_take(struct vbd_vm_maps *m, uint64_t n, const char **quota, uint64_t *limit);
void vbd_vm_maps_give(struct vbd_vm_maps *m, uint64_t n);
void vbd_vm_maps_read(const struct vbd_vm_maps *m, uint64_t *used, uint64_t *max);
/* The bytes a VM's MRs pin (each window's span): 0, or -EDQUOT past its max-pinned. */
int vbd_vm_pins_take(struct vbd_vm_maps *m, uint64_t bytes, const char **quota,
		     uint64_t *limit);
void vbd_vm_pins_give(struct vbd_vm_maps *m, uint64_t bytes);
void vbd_vm_pins_read(const struct vbd_vm_maps *m, uint64_t *pinned, uint64_t *max);
uint64_t vbd_vm_maps_all_max(void);

/* What a VM's connection reaches of the VM: its RAM memfd and where guest-physical
 * addresses are in it (DEVSHM with VBUS_SHM_F_GPA), and its vectors (DEVSIG with
 * VBUS_SIG_F_VECTOR). done_fd: closed by the connection once it has freed all it held
 * (the VM's channel waits for that before it answers a RESET). */
struct vbd_guest_vm {
	int ram_fd;
	struct vbus_vm_ram_layout ram_layout;
	struct vbd_vm_sigs *sigs;
	struct vbd_vm_maps *maps;
	int done_fd;
};

/* caller.c: the process that connected, as uverbs would judge a user caller (CAP_NET_RAW,
 * CAP_IPC_LOCK in our user namespace, RLIMIT_MEMLOCK): taken at the connection, asked at a
 * call (its capabilities then ANDed with those it connected with). */
struct vbd_caller {
	pid_t pid;			/* as this namespace sees it (0: none) */
	int pidfd;			/* -1: no process to ask (a VM, an unseen pid) */
	uint64_t caps0;			/* effective capabilities at the connection */
	uint64_t memlock0;		/* RLIMIT_MEMLOCK at the connection, bytes */
};
void vbd_caller_init(struct vbd_caller *c, pid_t pid);
void vbd_caller_fini(struct vbd_caller *c);
void vbd_caller_caps(const struct vbd_caller *c, bool *net_raw, bool *ipc_lock);
uint64_t vbd_caller_memlock(const struct vbd_caller *c);

struct vbd_guest {
	struct vbd_guest *next;
	uint32_t id;
	int sock;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	struct vbd_caller caller;	/* the process that connected (caller.c) */
	struct vbd_bus *bus;
	bool hello_done;
	/* The guest closed its connection (not vbusd, nor a shutdown): what it made may
	 * live on in descriptors it passed on (kernel_linger.c). */
	bool left;
	/* A VM's connection (ram_fd -1 and sigs NULL for a process): its RAM, our own
	 * descriptor and reference. */
	struct vbd_guest_vm vm;
	struct vbd_guest_child child;	/* a child connection's parent; cls NULL: none */
	uint64_t features;		/* granted in HELLO */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_mutex_t send_lock;
	/* Held briefly around every change of slots[] and the counters, never across a
	 * device call, so that `vbusctl guest show` never waits behind a slow call. */
	pthread_mutex_t slots_lock;
	/* The table, index = handle/id (0 unused), in chunks allocated as it grows. */
	struct vbd_slot *slot_chunks[VBD_MAX_SLOTS / VBD_SLOT_CHUNK];
	uint32_t slots_end;		/* past the highest index ever used: its chunks exist */
	uint32_t n_handles, n_regions;
	uint64_t shm_bytes;
	uint64_t n_calls, n_errors;
	/* A leaf lock around the two below: a device's model tells a quota hit holding its
	 * own lock, which slot_free takes under slots_lock (cls->close). */
	pthread_mutex_t quota_lock;
	char quota_hit[24];		/* the last quota that refused it ("" if none) */
	uint64_t n_quota_hits;		/* refusals by a quota */
	bool gone;			/* the thread has finished */
	/* The call channel (VBUS_OP_CALLCHAN) and the thread that serves it. */
	struct vbus_callchan *chan;
	pthread_t chan_thread;
	bool chan_stop;
};

/* Slot i of guest g's table; i below g->slots_end. */
static inline struct vbd_slot *vbd_slot(const struct vbd_guest *g, uint32_t i)
{
	return &g->slot_chunks[i / VBD_SLOT_CHUNK][i % VBD_SLOT_CHUNK];
}

/* The whole daemon. */
struct vbd {
	pthread_mutex_t lock;
	char run_dir[80];
	struct vbd_bus *buses;
	struct vbd_dev *devs;
	struct vbd_guest *guests;
	uint32_t next_guest_id;
	bool stopping;
};
extern struct vbd vbd;
extern int vbd_epfd;	/* the main loop's: bus sockets are added to it */

/* model.c: run-time changes, all under vbd.lock (taken inside). */
int vbd_bus_add(const char *name, char **opts, int nopts, char *err, size_t errn);
int vbd_bus_del(const char *name, char *err, size_t errn);
int vbd_dev_add(const char *name, const char *cls, char **opts, int nopts, char *err,
		size_t errn);
int vbd_dev_del(const char *name, char *err, size_t errn);
void vbd_dev_check(void);
void vbd_shutdown(void);

/* guest.c */
void vbd_guest_accept(struct vbd_bus *b);
/* A guest connection on bus `bus` that the daemon makes itself (a VM's: vm_chan.c), reading
 * socket fd (a SOCK_SEQPACKET socketpair end, ours from now on) with pid as its peer. No
 * access check (the administrator placed it); max-guests applies. vm: what it reaches of
 * the VM (ram_fd duplicated, a reference to sigs taken). 0 or -errno; a refused connection
 * got the refusal on fd before it was closed. */
int vbd_guest_connect(const char *bus, int fd, pid_t pid, const struct vbd_guest_vm *vm);
int vbd_guest_send_event(struct vbd_guest *g, uint32_t type, uint32_t handle, uint32_t code,
			 const void *data, size_t len);
/* Cancel the running calls of g's instances (of device d, or all if d is NULL). */
void vbd_guest_cancel(struct vbd_guest *g, const struct vbd_dev *d);
/* The handle or id of slot i as the guest sees it (index plus generation). */
uint32_t vbd_slot_id(const struct vbd_guest *g, uint32_t i);
/* Tell the guests of bus b (with events) that device d arrived. */
void vbd_guests_dev_added(struct vbd_bus *b, const char *name);
/* End the child connections made of handle slot s (its device goes). */
void vbd_slot_end_kids(struct vbd_slot *s);
/* For device classes: the guest's region or signal by id (from DEVSHM / DEVSIG). */
/* A quota refused the guest: logged and kept for `guest show`; returns -EDQUOT. */
int vbd_quota_hit(struct vbd_guest *g, const char *quota, uint64_t limit);
int vbd_guest_region(struct vbd_guest *g, uint32_t id, int *fd, void **base, uint64_t *size,
		     const uint64_t **pages);
void vbd_guest_region_put(struct vbd_guest *g, uint32_t id);
/* A VM's region or MR window costs n of its mappings (vm_maps.c): 0, or -EDQUOT with the
 * quota told. A process's connection: nothing counted. */
int vbd_guest_maps_take(struct vbd_guest *g, uint64_t n);
void vbd_guest_maps_give(struct vbd_guest *g, uint64_t n);
/* A VM's MR pins `bytes` more (vm_maps.c): 0, or -EDQUOT with the quota named. */
int vbd_guest_pins_take(struct vbd_guest *g, uint64_t bytes);
void vbd_guest_pins_give(struct vbd_guest *g, uint64_t bytes);
/* Signal `id` of that direction: its eventfd in *fd, pinned until vbd_guest_signal_put. */
int vbd_guest_signal(struct vbd_guest *g, uint32_t id, uint32_t direction, int *fd);
void vbd_guest_signal_put(struct vbd_guest *g, uint32_t id);
/* Its eventfd, not pinned: for a user that holds a pin already (a CQ's channel). */
int vbd_guest_signal_fd(struct vbd_guest *g, uint32_t id, uint32_t direction);
/* Handle one decoded request of g (also the fuzzing entry point). The response goes out
 * through g->sock. */
int vbd_guest_request(struct vbd_guest *g, const void *buf, size_t n, int *fds, int nfds);

/* kernel_admin.c: the kernel backend's module, through its admin descriptor, opened once
 * (include/vbus/vrdma-kernel.h). */
struct vbk_attach;
struct vbk_stats;
struct vbk_res_obj;
struct vbk_child;
struct vbk_tree_node;
const char *vbd_kernel_admin_path(void);
int vbd_kernel_admin_open(char *err, size_t errn);
int vbd_kernel_attach(const struct vbk_attach *a, int *fd);
bool vbd_kernel_has_whitelist(void);
int vbd_kernel_revoke(uint64_t tag);
int vbd_kernel_stats(uint32_t guest_id, struct vbk_stats *st);
/* The objects of guest_id's attachment (VBK_IOC_RES): *objs (malloc'ed, the caller frees)
 * and their number *n. 0 or -errno. */
int vbd_kernel_res(uint32_t guest_id, struct vbk_res_obj **objs, uint32_t *n);
/* Passthrough (docs/nesting.md): a child of the attachment `parent`, and the same calls on
 * the children made through descriptor fd (-1: the admin descriptor). */
int vbd_kernel_child(int parent, const struct vbk_child *c, int *fd);
int vbd_kernel_revoke_on(int fd, uint64_t tag);
/* kernel_linger.c, under vbd.lock: remember an attachment (of device dev, made through
 * owner_fd, -1 the admin descriptor) whose guest left bus while its descriptor may live on
 * (it counts in the bus's guests until it closes); drop those closed; end every one of
 * dev's (VBK_IOC_REVOKE) when dev goes. */
void vbd_kernel_linger(const void *dev, struct vbd_bus *bus, int owner_fd, uint64_t tag,
		       uint32_t guest_id);
void vbd_kernel_linger_prune(void);
void vbd_kernel_linger_end(const void *dev);
int vbd_kernel_stats_on(int fd, uint32_t guest_id, struct vbk_stats *st);
int vbd_kernel_res_on(int fd, uint32_t guest_id, struct vbk_res_obj **objs, uint32_t *n);
/* The descendants of guest_id's attachment (VBK_IOC_TREE), parent before child: *nodes
 * (malloc'ed, the caller frees) and their number *n. 0 or -errno. */
int vbd_kernel_tree_on(int fd, uint32_t guest_id, struct vbk_tree_node **nodes, uint32_t *n);

/* ctl.c: one command (argv), answered as text or JSON into out. */
int vbd_command(int argc, char **argv, bool json, char *out, size_t outn);
int vbd_ctl_open(void);
int vbd_listen(const char *path, mode_t mode, int backlog);
void vbd_ctl_serve(int fd);
/* config.c */
int vbd_config_load(const char *path);

#endif /* VBUSD_H */
