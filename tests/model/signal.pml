/*
 * The shm-signal handshake (connector/shm_signal.c, connector/call.c), model-checked:
 * a producer publishes N pieces of work and kicks the consumer only when it announced a
 * sleep; the consumer announces, re-checks, and only then sleeps. The claim: the consumer
 * never sleeps for good while work is waiting (no lost wake-up).
 * Build with -DBROKEN for the variant without the re-check: spin must find the bug there.
 */
#define N 3

bit s_enabled = 0;	/* consumer: "kick me" (enabled in shm.h) */
bit s_pending = 0;	/* producer: "I kicked" */
byte prod = 0;		/* work published */
byte cons = 0;		/* work consumed */
byte efd = 0;		/* the eventfd's counter */
bit asleep = 0;
bit done = 0;

active proctype producer()
{
	byte i = 0;
	do
	:: i < N ->
		prod++;			/* seq_cst store of prod */
		if			/* seq_cst load of s_enabled */
		:: s_enabled == 1 ->
			if
			:: atomic { s_pending == 0 -> s_pending = 1 }; efd++
			:: else -> skip
			fi
		:: else -> skip
		fi;
		i++
	:: else -> break
	od;
	done = 1
}

active proctype consumer()
{
	do
	:: prod != cons -> cons++
	:: prod == cons ->
		s_enabled = 1;		/* seq_cst store of s_enabled */
#ifndef BROKEN
		if
		:: prod != cons -> s_enabled = 0	/* the re-check found work */
		:: else ->
#endif
			asleep = 1;
			/* poll() and read(): blocks until kicked, then it is awake */
end_sleep:		atomic { efd > 0 -> efd--; asleep = 0 };
			s_pending = 0;
			s_enabled = 0
#ifndef BROKEN
		fi
#endif
	od
}

/* A lost wake-up: everything published, the consumer asleep, nobody will kick it, and
 * work is waiting. */
active proctype monitor()
{
end_watch:
	atomic { (done && asleep && efd == 0 && prod != cons) -> assert(false) }
}
