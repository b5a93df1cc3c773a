/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the Check suites. */
#pragma once

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Decode lowercase/uppercase hex into a fresh malloc'd buffer; aborts the test on bad input. */
static inline uint8_t *test_unhex(const char *hex, size_t *ret_size) {
        size_t n = strlen(hex);
        uint8_t *b;

        ck_assert_msg(n % 2 == 0, "odd hex length");
        b = malloc(n / 2 + 1);
        ck_assert_ptr_nonnull(b);
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;
                ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
                b[i] = (uint8_t) v;
        }
        *ret_size = n / 2;
        return b;
}

static inline int test_run_suite(Suite *s) {
        SRunner *sr = srunner_create(s);
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
