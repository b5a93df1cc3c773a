/* SPDX-License-Identifier: MIT */
/* The smallest useful libdkm program: encrypt a credential for a key group and decrypt it again. */

/* Build: cc dkm-example.c $(pkg-config --cflags --libs dkm)
 * Run as a member of the key group's gid:  ./a.out GROUP */
#include <dkm.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char *argv[]) {
        const char *group = argc > 1 ? argv[1] : "mail";
        const char secret[] = "imap-password-for-alice";
        const char ad[] = "account:alice@example.com"; /* binds the ciphertext to its record */
        uint8_t ct[sizeof(secret) + DKM_ABYTES_MAX], pt[sizeof(secret)];
        size_t ct_len, pt_len;
        dkm_info_t info;
        int r;

        r = dkm_encrypt(group, ad, strlen(ad), secret, strlen(secret), ct, sizeof(ct), &ct_len);
        if (r < 0) {
                fprintf(stderr, "encrypt for group %s: %s\n", group, dkm_strerror(r));
                return EXIT_FAILURE;
        }

        /* Store ct anywhere: it names its group and generation, so it stays readable after
         * rollovers for as long as that generation is not retired. */
        r = dkm_ciphertext_info(ct, ct_len, &info);
        if (r < 0) {
                fprintf(stderr, "info: %s\n", dkm_strerror(r));
                return EXIT_FAILURE;
        }
        printf("%zu bytes, group %s, generation %u, %s\n", ct_len, info.group, info.generation,
               dkm_algorithm_name(info.algorithm));

        r = dkm_decrypt(ct, ct_len, ad, strlen(ad), pt, sizeof(pt), &pt_len);
        if (r < 0) {
                fprintf(stderr, "decrypt: %s\n", dkm_strerror(r));
                return EXIT_FAILURE;
        }
        if (pt_len != strlen(secret) || memcmp(pt, secret, pt_len) != 0) {
                fprintf(stderr, "decrypt: wrong plaintext\n");
                return EXIT_FAILURE;
        }

        /* The wrong associated data (another account's record) must not decrypt. */
        r = dkm_decrypt(ct, ct_len, "account:bob", 11, pt, sizeof(pt), &pt_len);
        if (r != -EBADMSG) {
                fprintf(stderr, "decrypt with the wrong ad: %s\n", r < 0 ? dkm_strerror(r) : "succeeded");
                return EXIT_FAILURE;
        }

        printf("round trip ok\n");
        dkm_cleanup(); /* optional: keys are wiped at exit anyway */
        return EXIT_SUCCESS;
}
