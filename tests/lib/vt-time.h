/* SPDX-License-Identifier: MIT */
/*
 * Time limits of the C test programs scale with the machine, as the scripts' do
 * (tests/lib/time.sh, docs/testing.md): a deadline that fails a test (a poll that gives up,
 * alarm(), "n completions within 10 s") is the figure written in the test times
 * VBUS_TIME_SCALE, which tests/run measures and exports. Unset, not a number or below the
 * floor: the floor, 3. Waits that measure something, and waits for something that must
 * *not* happen, are not scaled. Header only, plain C: the guest programs include it too.
 */
#ifndef VBUS_TESTS_VT_TIME_H
#define VBUS_TESTS_VT_TIME_H

#include <limits.h>
#include <stdlib.h>

#define VT_TIME_FLOOR 3.0	/* as VT_FLOOR in tests/lib/time.sh */

/* The factor (no caching: cheap, and safe from any thread). */
static inline double vt_time_scale(void)
{
	const char *e = getenv("VBUS_TIME_SCALE");
	char *end;
	double v;

	if (!e || !*e)
		return VT_TIME_FLOOR;
	v = strtod(e, &end);
	return *end || !(v >= VT_TIME_FLOOR) ? VT_TIME_FLOOR : v;
}

/* secs seconds, scaled. */
static inline double vt_secs(double secs)
{
	return secs * vt_time_scale();
}

/* ms milliseconds, scaled, for poll(); never past INT_MAX. */
static inline int vt_ms(int ms)
{
	double v = ms * vt_time_scale();

	return v > INT_MAX ? INT_MAX : (int)v;
}

/* Whole seconds, scaled and rounded up, for alarm(). */
static inline unsigned vt_alarm_secs(unsigned secs)
{
	double v = secs * vt_time_scale();

	return v > 86400 ? 86400 : (unsigned)v + (v > (unsigned)v);
}

/*
 * A limit that shows something happened well before a duration the test set itself (a call
 * ended long before its 4 s, vbusctl did not wait behind a 1 s call): scaled, but never
 * past `bound`, which the caller puts safely below that duration, so that the check keeps
 * its meaning on any machine.
 */
static inline double vt_secs_below(double secs, double bound)
{
	double v = vt_secs(secs);

	return v < bound ? v : bound;
}

#endif
