/* SPDX-License-Identifier: MIT */
/* dkm-keyring-helper's exit statuses: one per kind of failure, so the daemon can tell them apart. */
#pragma once

typedef enum KeyringHelperExit {
        KEYRING_HELPER_EXIT_OK = 0,
        KEYRING_HELPER_EXIT_INTERNAL = 1,       /* out of memory, unexpected */
        KEYRING_HELPER_EXIT_USAGE = 2,          /* bad command line */
        KEYRING_HELPER_EXIT_MANIFEST = 3,       /* manifest refused by the parser */
        KEYRING_HELPER_EXIT_INPUT = 4,          /* stdin unreadable, a terminal, or too large */
        KEYRING_HELPER_EXIT_PRIVILEGE = 5,      /* not root, a capability missing, hardening failed */
        KEYRING_HELPER_EXIT_KERNEL = 6,         /* a keyctl operation failed */
        KEYRING_HELPER_EXIT_RUNTIME = 7,        /* the runtime directory or its files */
        KEYRING_HELPER_EXIT_USER_LINK = 8,      /* linking into a member's user keyring */
        KEYRING_HELPER_EXIT_NOT_LOADED = 9,     /* the group has no keyring */
        KEYRING_HELPER_EXIT_NO_GENERATION = 10, /* the generation is not loaded */
        KEYRING_HELPER_EXIT_BUSY = 11,          /* refused: the active generation */
        /* request-key only (the key is rejected too; see docs/KEYRING.md): */
        KEYRING_HELPER_EXIT_STORE = 12,   /* the store cannot be opened, read or unlocked */
        KEYRING_HELPER_EXIT_UNKNOWN = 13, /* no such group id or generation; not a generation key's description */
        KEYRING_HELPER_EXIT_RETIRED = 14, /* the generation is retired */
} KeyringHelperExit;
