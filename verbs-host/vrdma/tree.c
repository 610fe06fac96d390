// SPDX-License-Identifier: MIT
/*
 * The passthrough tree of a kernel-backend attachment (VBK_IOC_TREE, docs/nesting.md "What
 * each level sees"): the child functions a middle level made of it for its own guests, and
 * theirs, as `vbusctl guest show` and `res show` print them. The module gives the nodes
 * parent before child with their depth; JSON nests them, text indents them.
 *
 * guest_id is what the middle level named its guest (claimed, shown as such); pid is the
 * process the module saw make the child's first control call, in vbusd's pid namespace.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <vbus/vrdma-kernel.h>
#include "../strbuf.h"
#include "vrdma.h"

/* The nodes from *i on that are at `depth` (and, nested, their descendants). */
static void tree_json(struct strbuf *o, const struct vbk_tree_node *t, uint32_t n, uint32_t *i,
		      uint32_t depth)
{
	bool first = true;

	strbuf_put(o, "[");
	while (*i < n && t[*i].depth == depth) {
		const struct vbk_tree_node *x = &t[(*i)++];

		strbuf_put(o, "%s{\"guest\":%u,\"pid\":%d,\"objects\":%u,\"pinned_bytes\":%llu,"
			   "\"revoked\":%s,\"children\":", first ? "" : ",", x->guest_id, x->pid,
			   x->objects, (unsigned long long)x->pinned_bytes,
			   x->flags & VBK_TREE_REVOKED ? "true" : "false");
		tree_json(o, t, n, i, depth + 1);
		strbuf_put(o, "}");
		first = false;
	}
	strbuf_put(o, "]");
}

int vrdma_tree_show(const struct vbk_tree_node *t, uint32_t n, bool json, const char *indent,
		    char *buf, size_t len)
{
	struct strbuf o = { buf, len, 0 };
	uint32_t i = 0;

	if (len)
		buf[0] = 0;
	if (json) {
		tree_json(&o, t, n, &i, 1);
		/* i < n: a node deeper than the one before it by more than one (not the
		 * module's form) */
		return o.pos < o.n && i == n ? 0 : (o.pos >= o.n ? -ENOSPC : -EPROTO);
	}
	for (; i < n; i++)
		strbuf_put(&o, "%s%*schild for guest %u pid %d objects %u pinned %llu%s\n", indent,
			   (int)(2 * (t[i].depth - 1)), "", t[i].guest_id, t[i].pid, t[i].objects,
			   (unsigned long long)t[i].pinned_bytes,
			   t[i].flags & VBK_TREE_REVOKED ? " revoked" : "");
	return o.pos < o.n ? 0 : -ENOSPC;
}
