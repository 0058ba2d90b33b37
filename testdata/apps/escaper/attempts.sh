#!/bin/sh
# Tries what build-time code must not manage, one line per attempt:
#   attempt: <stage> <what> -> denied: <error>   or   -> ALLOWED: <output>
# The test substitutes @DATADIR@ (Hangar's data dir), @HOSTFILE@ (a file it
# made on the host, outside /tmp) and @HANGARPID@ (Hangar's PID). Writes are judged by the test on the host; they print "wrote" when
# they succeeded inside the sandbox (setup writes its own image layer).
stage=$1
try() {
	what=$1
	shift
	if out=$("$@" 2>&1); then
		echo "attempt: $stage $what -> ALLOWED: $(printf %s "$out" | head -c 120 | tr '\n' ' ')"
	else
		echo "attempt: $stage $what -> denied: $(printf %s "$out" | head -c 120 | tr '\n' ' ')"
	fi
}
write() {
	if out=$(sh -c "echo escaped > $1" 2>&1); then
		echo "attempt: $stage writes $1 -> wrote (inside the sandbox)"
	else
		echo "attempt: $stage writes $1 -> denied: $out"
	fi
}
write /etc/hangar-escape-$stage
write @DATADIR@/escape-$stage
write /tmp/../usr/hangar-escape-$stage
try "reads secrets.key" cat @DATADIR@/secrets.key
try "reads ca-key.pem" cat @DATADIR@/ca-key.pem
try "reads the metadata cluster" ls @DATADIR@/postgres
try "reads a host file" cat @HOSTFILE@
try "sees Hangar's process" test -e /proc/@HANGARPID@
try "signals Hangar" kill -0 @HANGARPID@
try "lists more than its own processes" sh -c 'test $(ls -d /proc/[0-9]* | wc -l) -gt 20'
exit 0
