/* SPDX-License-Identifier: MIT */
/* libFuzzer: STATE/store.policy (src/store/store-policy.h store_policy_file_parse, pure). The corpus
 * holds bodies; the harness appends the checksum line (fuzz.h). The input also builds a policy
 * for the writer, whose text must parse back to it. */
#include <errno.h>

#include "fuzz.h"
#include "store-policy.h"

static void check(const char *file, size_t size) {
        _cleanup_free_ char *text = NULL;
        StorePolicy p;
        KvError e = {};
        size_t n = 0;
        int r;

        r = store_policy_file_parse(file, size, &p, &e);
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG || r == -EPROTONOSUPPORT);
                FUZZ_ASSERT(memchr(e.msg, 0, sizeof(e.msg)) && e.msg[0]);
                return;
        }
        /* What parses is in range, and canonical: the writer gives back the very file. */
        FUZZ_ASSERT(store_policy_check(&p) == 0);
        r = store_policy_file_format(&p, &text, &n);
        FUZZ_ASSERT(r == 0);
        FUZZ_ASSERT(n == size && memcmp(text, file, size) == 0);
}

static void roundtrip(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL;
        FuzzInput in = { data, size };
        StorePolicy p = {}, q;
        KvError e = {};
        size_t n = 0;
        int r;

        p.n_approval_levels = fuzz_u8(&in) % (STORE_APPROVAL_LEVELS_MAX + 2);
        for (size_t i = 0; i < p.n_approval_levels && i < STORE_APPROVAL_LEVELS_MAX; i++)
                p.approval_levels[i] = fuzz_u32(&in);
        p.purge_delay_usec = fuzz_u64(&in);
        r = store_policy_file_format(&p, &text, &n);
        if (store_policy_check(&p) < 0) {
                FUZZ_ASSERT(r == -EINVAL);
                return;
        }
        FUZZ_ASSERT(r == 0);
        FUZZ_ASSERT(store_policy_file_parse(text, n, &q, &e) == 0);
        FUZZ_ASSERT(q.n_approval_levels == p.n_approval_levels && q.purge_delay_usec == p.purge_delay_usec);
        FUZZ_ASSERT(memcmp(q.approval_levels, p.approval_levels, p.n_approval_levels * sizeof(gid_t)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *file;
        size_t n;

        fuzz_init_crypto();
        if (size > KVFILE_SIZE_MAX)
                return 0;
        check((const char *) data, size); /* raw: the framing in front of the parser */
        file = fuzz_kvfile_seal(data, size, &n);
        check(file, n);
        free(file);
        roundtrip(data, size);
        return 0;
}
