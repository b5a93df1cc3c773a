/* SPDX-License-Identifier: MIT */
/* The request-key handler's dealings with the key under construction: authority, checks, marker, rejection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyutils.h>

#include "keyring-request.h"

int keyring_request_begin(KeySerial key, const char *desc, KeyringRequest *ret) {
        char buf[KEYRING_DESC_MAX + 64], *fields[4], *p = buf;
        unsigned long uid, gid;
        long n;

        if (key <= 0 || !desc)
                return -EINVAL;
        /* The kernel put the authorisation key for this one key in the upcall's session
         * keyring; assuming it fails for any other key, and for anyone run outside the upcall.
         * Nothing else lets us instantiate or reject a key we do not own. */
        if (keyctl_assume_authority(key) < 0)
                return -EPERM;

        /* The description on our command line passed through /sbin/request-key's argument
         * expansion; the kernel's own copy is the one that names what the requester will get. */
        n = keyctl_describe(key, buf, sizeof(buf));
        if (n < 0)
                return -EPERM;
        if ((size_t) n > sizeof(buf))
                return -EINVAL;
        buf[sizeof(buf) - 1] = 0;
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                fields[i] = p;
                p = strchr(p, ';');
                if (!p)
                        return -EINVAL;
                *p++ = 0;
        }
        if (strcmp(fields[0], "user") != 0 || strcmp(p, desc) != 0)
                return -EINVAL;
        errno = 0;
        uid = strtoul(fields[1], NULL, 10);
        gid = strtoul(fields[2], NULL, 10);
        if (errno != 0)
                return -EINVAL;
        *ret = (KeyringRequest){ .key = key, .uid = (uid_t) uid, .gid = (gid_t) gid };
        return 0;
}

int keyring_request_instantiate_marker(const KeyringRequest *req, unsigned timeout_sec) {
        /* The timeout first: the kernel lets the authority holder set it only while the key is
         * still under construction, and instantiating ends our authority. */
        if (keyctl_set_timeout(req->key, timeout_sec) < 0)
                return negative_errno();
        if (keyctl_instantiate(req->key, KEYRING_REQUEST_MARKER, strlen(KEYRING_REQUEST_MARKER), 0) < 0)
                return negative_errno();
        return 0;
}

int keyring_request_reject(const KeyringRequest *req, unsigned timeout_sec, int error) {
        if (error <= 0)
                return -EINVAL;
        if (keyctl_reject(req->key, timeout_sec, (unsigned) error, 0) < 0)
                return negative_errno();
        return 0;
}
