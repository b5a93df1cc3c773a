/* SPDX-License-Identifier: MIT */
/* Fleet hosts in the store: a host key pair, a store joined with the fleet's identity, the
 * x25519 protector one host seals for another (docs/FLEET.md, "Host enrolment"), and the seal
 * on the group files a fleet publishes ("Integrity"). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "store.h"

static char base[] = "/tmp/dkm-fleet-host-XXXXXX";
static char dir_a[64], dir_b[64], dir_c[64];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static void setup(void) {
        ck_assert_ptr_nonnull(mkdtemp(base));
        snprintf(dir_a, sizeof(dir_a), "%s/a", base);
        snprintf(dir_b, sizeof(dir_b), "%s/b", base);
        snprintf(dir_c, sizeof(dir_c), "%s/c", base);
}

static void teardown(void) {
        (void) nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        strcpy(base, "/tmp/dkm-fleet-host-XXXXXX");
}

/* Copy a group file from one store to another, as the directory does between hosts. */
static void copy_group(const char *from, const char *to, const char *name) {
        char src[128], dst[128], *data = NULL;
        size_t size;
        int fd;

        snprintf(src, sizeof(src), "%s/groups", from);
        snprintf(dst, sizeof(dst), "%s/groups/%s.group", to, name);
        fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        snprintf(src, sizeof(src), "%s.group", name);
        ck_assert_int_eq(read_file_full(fd, src, 1 << 20, &data, &size), 0);
        close(fd);
        fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, data, size), 0);
        close(fd);
        free(data);
}

/* A, the first host, holds the root key; B joins with A's identity and gets its root key only
 * through the protector A seals to B's public key. */
START_TEST(test_enrol_host) {
        _cleanup_store_ Store *a = NULL, *b = NULL, *b2 = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL, *gb = NULL;
        _cleanup_secret_ Secret *ka = NULL, *kb = NULL;
        _cleanup_free_ char *text = NULL;
        uint8_t id[STORE_ID_SIZE], pk_b[STORE_X25519_KEY_BYTES], pk_b2[STORE_X25519_KEY_BYTES];
        size_t size;

        ck_assert_int_eq(store_init(dir_a, NULL, &a), 0);
        ck_assert_int_eq(store_group_create(a, "mail", 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, &g), 0);
        store_id(a, id);

        ck_assert_int_eq(store_join(dir_b, id, &b), 0);
        ck_assert(!store_is_unlocked(b));
        ck_assert_int_eq(store_unlock(b, NULL), -ENOKEY); /* no protector yet */
        ck_assert_int_eq(store_host_key(b, false, pk_b), -ENOENT);
        ck_assert_int_eq(store_host_key(b, true, pk_b), 0);
        ck_assert_int_eq(store_host_key(b, false, pk_b2), 0);
        ck_assert_mem_eq(pk_b, pk_b2, sizeof(pk_b)); /* made once, then read */
        ck_assert_int_eq(store_join(dir_b, id, &b2), -EEXIST);

        /* A seals for B without ever seeing B's private key; B installs and opens it. */
        ck_assert_int_eq(store_protector_seal_for_host(a, "fleet-b", pk_b, &text, &size), 0);
        ck_assert_ptr_nonnull(strstr(text, "type=x25519\n"));
        ck_assert_int_eq(store_protector_install(b, "fleet-b", text, size), 0);
        copy_group(dir_a, dir_b, "mail");
        ck_assert_int_eq(store_unlock(b, NULL), 0);
        ck_assert_int_eq(store_group_load(b, "mail", &gb), 0);
        ck_assert_int_eq(store_generation_unwrap(a, g, 1, &ka), 0);
        ck_assert_int_eq(store_generation_unwrap(b, gb, 1, &kb), 0);
        ck_assert(secret_equal(ka, kb));
}
END_TEST

/* The fleet's seal on a group file (docs/FLEET.md, "Integrity"): opened by any host with the
 * fleet's root key, for that group and revision only; any changed byte, another revision, another
 * group, another fleet, no seal, or a locked store: refused. */
START_TEST(test_group_seal) {
        _cleanup_store_ Store *a = NULL, *other = NULL, *locked = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL, *g2 = NULL;
        _cleanup_free_ char *text = NULL, *sealed = NULL, *opened = NULL;
        size_t size, sealed_size, opened_size;
        char *bad = NULL, *cut = NULL;

        ck_assert_int_eq(store_init(dir_a, NULL, &a), 0);
        ck_assert_int_eq(store_group_create(a, "mail", 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, &g), 0);
        ck_assert_int_eq(store_group_export(a, "mail", &text, &size), 0);
        ck_assert_int_eq(store_group_fleet_seal(a, "mail", 7, text, size, &sealed, &sealed_size), 0);
        ck_assert_uint_eq(sealed_size, size + strlen("fleet-seal=") + 64 + 1);
        ck_assert(memcmp(sealed, text, size) == 0 && strncmp(sealed + size, "fleet-seal=", 11) == 0);

        ck_assert_int_eq(store_group_fleet_open(a, "mail", 7, sealed, sealed_size, &opened, &opened_size), 0);
        ck_assert_uint_eq(opened_size, size);
        ck_assert(memcmp(opened, text, size) == 0);

        ck_assert_int_eq(store_group_fleet_open(a, "mail", 8, sealed, sealed_size, &bad, &size), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(store_last_error(a), "does not match"));
        ck_assert_int_eq(store_group_fleet_open(a, "mail2", 7, sealed, sealed_size, &bad, &size), -EBADMSG);
        for (size_t i = 0; i < sealed_size; i += 37) {
                char *flipped = strndup(sealed, sealed_size);

                flipped[i] ^= 0x01;
                ck_assert_int_eq(store_group_fleet_open(a, "mail", 7, flipped, sealed_size, &bad, &size), -EBADMSG);
                free(flipped);
        }
        ck_assert_int_eq(store_group_fleet_open(a, "mail", 7, text, opened_size, &bad, &size), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(store_last_error(a), "not sealed"));
        cut = strndup(sealed, sealed_size - 1); /* the seal line without its newline */
        ck_assert_int_eq(store_group_fleet_open(a, "mail", 7, cut, sealed_size - 1, &bad, &size), -EBADMSG);
        free(cut);
        ck_assert_ptr_null(bad);

        /* another fleet's root key */
        ck_assert_int_eq(store_init(dir_c, NULL, &other), 0);
        ck_assert_int_eq(store_group_fleet_open(other, "mail", 7, sealed, sealed_size, &bad, &size), -EBADMSG);
        ck_assert_int_eq(store_group_create(other, "mail", 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, &g2), 0);

        /* a locked store can neither seal nor check */
        ck_assert_int_eq(store_open(dir_a, &locked), 0);
        ck_assert(!store_is_unlocked(locked));
        ck_assert_int_eq(store_group_fleet_open(locked, "mail", 7, sealed, sealed_size, &bad, &size), -ENOKEY);
        ck_assert_int_eq(store_group_fleet_seal(locked, "mail", 7, text, opened_size, &bad, &size), -ENOKEY);
        ck_assert_ptr_null(bad);
}
END_TEST

START_TEST(test_refusals) {
        _cleanup_store_ Store *a = NULL, *b = NULL, *c = NULL, *other = NULL;
        _cleanup_free_ char *text = NULL, *for_c = NULL, *bad = NULL;
        uint8_t id[STORE_ID_SIZE], pk_b[STORE_X25519_KEY_BYTES], pk_c[STORE_X25519_KEY_BYTES];
        char other_dir[96];
        size_t size, size_c;
        char *at;

        ck_assert_int_eq(store_init(dir_a, NULL, &a), 0);
        store_id(a, id);
        ck_assert_int_eq(store_join(dir_b, id, &b), 0);
        ck_assert_int_eq(store_join(dir_c, id, &c), 0);
        ck_assert_int_eq(store_host_key(b, true, pk_b), 0);
        ck_assert_int_eq(store_host_key(c, true, pk_c), 0);
        ck_assert_int_eq(store_protector_seal_for_host(a, "fleet-b", pk_b, &text, &size), 0);
        ck_assert_int_eq(store_protector_seal_for_host(a, "fleet-c", pk_c, &for_c, &size_c), 0);

        /* B will not install what only C can open, nor under another name, nor damaged text. */
        ck_assert_int_eq(store_protector_install(b, "fleet-c", for_c, size_c), -EINVAL);
        ck_assert_ptr_nonnull(strstr(store_last_error(b), "sealed to another host"));
        ck_assert_int_eq(store_protector_install(b, "fleet-x", text, size), -EINVAL);
        bad = strdup(text);
        at = strstr(bad, "sealed-key=");
        ck_assert_ptr_nonnull(at);
        at[12] = at[12] == '0' ? '1' : '0';
        ck_assert_int_eq(store_protector_install(b, "fleet-b", bad, size), -EINVAL); /* checksum */
        ck_assert_int_eq(store_unlock(b, NULL), -ENOKEY);

        /* Installed under B, the same file does not open C, whose key differs. */
        ck_assert_int_eq(store_protector_install(b, "fleet-b", text, size), 0);
        ck_assert_int_eq(store_unlock(b, NULL), 0);

        /* Only a host that holds the root key seals; a store of another identity cannot use it. */
        free(text);
        text = NULL;
        ck_assert_int_eq(store_protector_seal_for_host(c, "fleet-c", pk_c, &text, &size), -ENOKEY);
        snprintf(other_dir, sizeof(other_dir), "%s/other", base);
        ck_assert_int_eq(store_init(other_dir, NULL, &other), 0);
        ck_assert_int_eq(store_protector_seal_for_host(other, "fleet-c", pk_c, &text, &size), 0);
        ck_assert_int_eq(store_protector_install(c, "fleet-c", text, size), 0);
        ck_assert_int_eq(store_unlock(c, NULL), -ENOKEY);
        ck_assert_ptr_nonnull(strstr(store_last_error(c), "does not unwrap the root key"));
}
END_TEST

/* The host key file is trusted only as a key file is: ours, 0600, 32 bytes. */
START_TEST(test_host_key_file) {
        _cleanup_store_ Store *b = NULL;
        uint8_t id[STORE_ID_SIZE] = { 1 }, pk[STORE_X25519_KEY_BYTES];
        char p[128];

        ck_assert_int_eq(store_join(dir_b, id, &b), 0);
        ck_assert_int_eq(store_host_key(b, true, pk), 0);
        snprintf(p, sizeof(p), "%s/protectors/host.x25519", dir_b);
        ck_assert_int_eq(chmod(p, 0644), 0);
        ck_assert_int_eq(store_host_key(b, false, pk), -EPERM);
        ck_assert_int_eq(chmod(p, 0600), 0);
        ck_assert_int_eq(truncate(p, 31), 0);
        ck_assert_int_eq(store_host_key(b, false, pk), -EPERM);
}
END_TEST

static Suite *fleet_host_suite(void) {
        Suite *s = suite_create("fleet-host");
        TCase *tc = tcase_create("store");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_enrol_host);
        tcase_add_test(tc, test_group_seal);
        tcase_add_test(tc, test_refusals);
        tcase_add_test(tc, test_host_key_file);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(fleet_host_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
