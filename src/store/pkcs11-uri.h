/* SPDX-License-Identifier: MIT */
/* A minimal RFC 7512 "pkcs11:" URI parser for the PKCS#11 protector. Pure: no I/O, no logging. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define PKCS11_URI_MAX 1024U       /* whole URI, as stored in a protector file */
#define PKCS11_URI_LABEL_MAX 255U  /* decoded token label, object label, module name */
#define PKCS11_URI_ID_MAX 128U     /* decoded CKA_ID bytes */
#define PKCS11_URI_PATH_MAX 4095U  /* decoded module-path */

typedef struct Pkcs11Uri {
        /* Empty string (or id_size 0) = attribute absent. */
        char token[PKCS11_URI_LABEL_MAX + 1];
        char object[PKCS11_URI_LABEL_MAX + 1];
        uint8_t id[PKCS11_URI_ID_MAX];
        size_t id_size;
        char module_name[PKCS11_URI_LABEL_MAX + 1];
        char module_path[PKCS11_URI_PATH_MAX + 1];
} Pkcs11Uri;

/* Parse s into *ret. Path attributes: token, object, id, and type (only "secret-key"); any other
 * path attribute is refused, slot-* in particular (tokens are chosen by label, never by slot
 * number, which changes when tokens are added). Query attributes: module-name, module-path (absolute);
 * pin-value and pin-source are refused (a PIN never goes into a stored URI); other query
 * attributes are ignored, as RFC 7512 allows. Values are percent-decoded; a decoded NUL, a bad
 * escape, a repeated attribute, an empty value or an over-long one is refused.
 * -EINVAL with *ret_why (a static string) saying what is wrong. */
int pkcs11_uri_parse(const char *s, Pkcs11Uri *ret, const char **ret_why) _warn_unused_result_;
