/* SPDX-License-Identifier: MIT */
/*
 * What the guest verbs library (libvbus-verbs.so) offers a vbusd that runs as a guest
 * (docs/nesting.md). These are not wire structures: they pass between two objects of one
 * process. vbusd finds the functions with dlsym(RTLD_DEFAULT, name) and takes their absence
 * as "not nested" (a vbusd on a real device).
 */
#ifndef VBUS_VERBS_NEST_H
#define VBUS_VERBS_NEST_H

#include <stddef.h>
#include <stdint.h>

struct ibv_context;

/* The limits of the caller's own attachment to a vbus device, as its HELLO granted them. */
struct vbus_verbs_limits {
	uint32_t max_objects;		/* handles */
	uint32_t gid_index;		/* the only source GID index allowed */
	uint64_t max_pinned_bytes;
	uint32_t abi_version;
	uint32_t kernel;		/* 1: the parent runs it on the kernel backend */
	uint32_t dead;			/* 1: the parent revoked it (DEVICE_FATAL was queued) */
	uint32_t child;			/* 1: the parent makes child connections of it
					 * (VBUS_OP_CHILD: a relay-backend device) */
};

/* 0 and *out when ctx is a vbus device's context; -ENODEV for any other context. */
typedef int vbus_verbs_query_limits_fn(struct ibv_context *ctx, struct vbus_verbs_limits *out);
#define VBUS_VERBS_QUERY_LIMITS "vbus_verbs_query_limits"

/*
 * [addr, addr + len) (page aligned) maps `fd` (a sealed memfd of `fd_size` bytes, the
 * caller's guest's region) from `offset` on, MAP_SHARED. A later ibv_reg_mr over these
 * pages hands that memfd to the parent bus instead of moving the pages (which would cut
 * the sharing). The library keeps its own copy of fd (the caller may close its own) and
 * hands it to the bus at the first registration on a relay-backend device; on a
 * kernel-backend device the module pins the pages where they are.
 * 0 or -errno; -EEXIST when the range overlaps memory the library knows already.
 */
typedef int vbus_verbs_shm_add_fn(void *addr, size_t len, int fd, uint64_t fd_size,
				  uint64_t offset);
#define VBUS_VERBS_SHM_ADD "vbus_verbs_shm_add"
/* Forget what vbus_verbs_shm_add said about [addr, addr + len), before it is unmapped. */
typedef void vbus_verbs_shm_forget_fn(void *addr, size_t len);
#define VBUS_VERBS_SHM_FORGET "vbus_verbs_shm_forget"

/*
 * The label (include/vbus/proto.h, struct vbus_devopen_label_in) that the DEVOPEN of each
 * context the calling thread opens on a vbus device carries from now on; NULL or "" for
 * none (the default). A middle vbusd names the guest it opens the context for, so that the
 * level below can show which of its guests' guests each handle serves.
 * 0, or -EINVAL when it is longer than a label holds.
 */
typedef int vbus_verbs_open_label_fn(const char *label);
#define VBUS_VERBS_OPEN_LABEL "vbus_verbs_open_label"

/*
 * The whitelist of the caller's own attachment (include/vbus/vrdma.h, VRDMA_WL_*), as its
 * vrdma HELLO granted it (all of it from a host before vrdma ABI version 3). 0, or -ENODEV
 * when ctx is not a vbus device's context. A library without it: all of it.
 */
typedef int vbus_verbs_query_whitelist_fn(struct ibv_context *ctx, uint32_t *qp_types,
					  uint32_t *access);
#define VBUS_VERBS_QUERY_WHITELIST "vbus_verbs_query_whitelist"

/* What a child of the caller's attachment may hold and use (vbus_verbs_child2). */
struct vbus_verbs_child_req {
	uint32_t max_objects;
	uint32_t qp_types;		/* the whitelist, within the attachment's */
	uint32_t access;
	uint32_t reserved;		/* 0 */
	uint64_t max_pinned_bytes;
};

/*
 * A child connection of the attachment behind ctx (VBUS_OP_CHILD, docs/abi.md), with at
 * most req's limits and whitelist: *fd, a socket to the bus ctx's device is on, whose name
 * goes to bus, for vbus_connect_fd, and the name of the device that opens on it (its name
 * at the level that runs it) to dev, each of n bytes. 0 or -errno (-ENODEV: not a vbus
 * context; -EOPNOTSUPP: a narrower whitelist than the attachment's, and the bus below
 * cannot take one, VBUS_F_CHILD_WL). vbus_verbs_child is the first form (the attachment's
 * whitelist, no device name), kept for a vbusd of stop 33.
 */
typedef int vbus_verbs_child2_fn(struct ibv_context *ctx, const struct vbus_verbs_child_req *req,
				 int *fd, char *bus, char *dev, size_t n);
#define VBUS_VERBS_CHILD2 "vbus_verbs_child2"
typedef int vbus_verbs_child_fn(struct ibv_context *ctx, uint32_t max_objects,
				uint64_t max_pinned_bytes, int *fd, char *bus, size_t busn);

/* Declared for the library that defines them; vbusd never links against them. */
vbus_verbs_query_limits_fn vbus_verbs_query_limits;
vbus_verbs_shm_add_fn vbus_verbs_shm_add;
vbus_verbs_shm_forget_fn vbus_verbs_shm_forget;
vbus_verbs_open_label_fn vbus_verbs_open_label;
vbus_verbs_child_fn vbus_verbs_child;
vbus_verbs_child2_fn vbus_verbs_child2;
vbus_verbs_query_whitelist_fn vbus_verbs_query_whitelist;

#endif
