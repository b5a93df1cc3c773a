/* SPDX-License-Identifier: MIT */
/* dkm-keyring-helper request-key: the kernel's request-key upcall handler for archived generations. */
#pragma once

#define HELPER_REQUEST_KEY_ARGS                                                                                        \
        "[--state-dir=DIR] [--runtime-dir=DIR] [--timeout=SECONDS] KEY-ID DESCRIPTION CALLOUT-INFO"

/* argv[0] is "request-key". Run by /sbin/request-key as root (see policy/request-key.d);
 * needs CAP_SETGID only. Returns an exit status (keyring-helper.h); whatever it returns, the
 * key under construction has been instantiated with the marker or rejected, unless the
 * command line or the authority was wrong (then the kernel negates it when we exit). */
int helper_verb_request_key(int argc, char **argv);
