/* SPDX-License-Identifier: MIT */
/* The request-key upcall's side of a key request: authority, the checks, the marker, rejection. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "keyring.h"
#include "macro.h"

/* The key a requester asked for (request_key("user", "dkm:<id-hex>:<n>", "dkm", 0)) is owned
 * by the requester's uid with the kernel's default mask (possessor all, owner view): it must
 * never carry key material. The handler loads the real key into the group keyring and
 * instantiates the requested key with KEYRING_REQUEST_MARKER instead (see keyring-names.h and
 * docs/KEYRING.md, "Archived generations on demand"). */

/* Seconds a marker or a rejection stays in the requester's keyring. Short, so a requester
 * asking again soon after finds the real key (or a new answer) rather than a stale marker;
 * at least 2, since the kernel counts whole seconds and a timeout of 1 may run out before
 * request_key() returns. */
#define KEYRING_REQUEST_MARKER_TIMEOUT_SEC 5U
#define KEYRING_REQUEST_REJECT_TIMEOUT_SEC 5U
#define KEYRING_REQUEST_TIMEOUT_MIN_SEC    2U

typedef struct KeyringRequest {
        KeySerial key; /* the key under construction */
        uid_t uid;     /* its owner: the requester's fsuid */
        gid_t gid;
} KeyringRequest;

/* Take the authority to instantiate key (the kernel put its authorisation key in the upcall's
 * session keyring; nothing else has it) and check that key is a "user" key described exactly
 * as desc. -EPERM if this process is not the upcall for key; -EINVAL on a type or description
 * mismatch. */
int keyring_request_begin(KeySerial key, const char *desc, KeyringRequest *ret) _warn_unused_result_;

/* Instantiate the requested key with KEYRING_REQUEST_MARKER and a timeout of timeout_sec. */
int keyring_request_instantiate_marker(const KeyringRequest *req, unsigned timeout_sec) _warn_unused_result_;

/* Make the requested key negative: request_key() fails with error (a positive errno) in the
 * requester for timeout_sec, without another upcall. */
int keyring_request_reject(const KeyringRequest *req, unsigned timeout_sec, int error) _warn_unused_result_;
