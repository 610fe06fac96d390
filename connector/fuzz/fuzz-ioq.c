// SPDX-License-Identifier: MIT
/*
 * fuzz-ioq: a hostile peer writes whatever it likes into a ring and a call channel; the
 * consumer side (ioq pop, call-channel request decoding) must never read out of bounds,
 * never crash, and never hand out a descriptor that breaks the rules.
 * The input: the first bytes are the ring header, the rest the descriptor area; then the
 * same bytes again as a call channel.
 */
/* fuzz-sources: connector/ioq.c connector/call.c connector/shm_signal.c */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[VBUS_CALL_SIZE(4)] __attribute__((aligned(64)));
	struct vbus_ioq c;
	struct vbus_callchan ch;
	struct vbus_call_req req;
	uint8_t desc[64];
	bool stop = true;

	/* A ring of 8 x 64-byte descriptors, attached as its consumer. */
	memset(mem, 0, sizeof(mem));
	memcpy(mem, data, size < sizeof(mem) ? size : sizeof(mem));
	if (vbus_ioq_init(&c, mem, 8, 64, false, false))
		abort();
	for (int i = 0; i < 20; i++) {
		int r = vbus_ioq_pop(&c, desc);

		if (r < 0 || r == 0)
			break;
	}
	/* The same bytes as a call channel, seen from the bus (requests from the guest). */
	memset(mem, 0, sizeof(mem));
	memcpy(mem, data, size < sizeof(mem) ? size : sizeof(mem));
	if (vbus_callchan_bus_init(&ch, mem, 4, -1, -1))
		abort();
	ch.spin_ns = 0;
	for (int i = 0; i < 8; i++) {
		int r = vbus_callchan_next(&ch, &req, &stop);

		if (r == 1 && le32toh(req.inlen) > VBUS_CALL_INLINE)
			abort();	/* an unchecked length got through */
		if (r != 1 && r != -EBADMSG)
			break;
	}
	return 0;
}
