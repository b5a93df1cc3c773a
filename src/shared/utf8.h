/* SPDX-License-Identifier: MIT */
/* Strict UTF-8: what a D-Bus string, a record line or an error message may carry. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Length (1 to 4) of the valid UTF-8 sequence at p, with n bytes available, and its code point
 * (ret_cp may be NULL); 0 if it is not valid: overlong, a surrogate, beyond U+10FFFF, or cut
 * short. */
size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *ret_cp);
