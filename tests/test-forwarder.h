/* SPDX-License-Identifier: MIT */
/* A TCP forwarder on a loopback port to a target loopback port, for partitioning a host from a
 * server in the fleet tests (point the host at the forwarder's port, then cut and restore).
 * The relay is a process of its own (tests/tcp-forwarder.c, $DKM_TCP_FORWARDER), so it keeps
 * full speed when the test runs under valgrind; it exits with the process that started it. */
#pragma once

#include <stdbool.h>

typedef struct TestForwarder TestForwarder;

/* Listen on 127.0.0.1 (a free port) and relay each connection to 127.0.0.1:target_port (one
 * that cannot be reached is reset at once). Aborts the test on failure. */
TestForwarder *test_forwarder_start(int target_port);
int test_forwarder_port(const TestForwarder *f);
/* The partition: every live connection is reset (RST to both sides, even if a forked process
 * still holds a copy of a socket), then the port stops listening: a new connect() is refused
 * at once (ECONNREFUSED). Returns once that is done. */
void test_forwarder_cut(TestForwarder *f);
/* Every live connection reset as by a cut, but the port goes on accepting: what a server
 * restart or a middlebox dropping its state looks like to a client that reconnects at once. */
void test_forwarder_reset_connections(TestForwarder *f);
/* Listen again on the same port; relays as before. */
void test_forwarder_restore(TestForwarder *f);
bool test_forwarder_is_cut(const TestForwarder *f);
/* Connections relayed now / accepted since the start. */
unsigned test_forwarder_live(const TestForwarder *f);
unsigned test_forwarder_accepted(const TestForwarder *f);
/* Reset everything, stop the relay, free. NULL is fine. */
void test_forwarder_stop(TestForwarder *f);
