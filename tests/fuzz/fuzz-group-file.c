/* SPDX-License-Identifier: MIT */
/* libFuzzer: store group files (src/store/group-file.h group_file_parse). The corpus holds bodies;
 * the harness appends the checksum line (fuzz.h), so the parser behind the framing is reached. */
#include <errno.h>

#include "fuzz.h"
#include "group-file.h"

static void check(const char *file, size_t size, const char *expected_name) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_free_ char *text = NULL;
        KvError e = {};
        size_t n = 0;
        int r;

        r = group_file_parse(file, size, expected_name, &g, &e);
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG || r == -EPROTONOSUPPORT);
                FUZZ_ASSERT(!g && memchr(e.msg, 0, sizeof(e.msg)) && e.msg[0]);
                return;
        }
        /* What parses is valid: a name, at most one active generation, ascending numbers, keys
         * exactly where the state wants them. */
        FUZZ_ASSERT(store_group_name_is_valid(g->name));
        FUZZ_ASSERT(!expected_name || strcmp(g->name, expected_name) == 0);
        FUZZ_ASSERT(store_group_policy_check(&g->policy) == 0);
        FUZZ_ASSERT(g->n_generations > 0);
        for (size_t i = 0; i < g->n_generations; i++) {
                const StoreGeneration *gen = &g->generations[i];

                FUZZ_ASSERT(gen->number > 0 && (i == 0 || gen->number > g->generations[i - 1].number));
                FUZZ_ASSERT(gen->has_key == (gen->state != GENERATION_RETIRED));
                FUZZ_ASSERT(store_group_find_generation(g, gen->number) == gen);
        }
        /* The format is canonical: the writer gives back exactly the file that was read. */
        r = group_file_format(g, &text, &n);
        FUZZ_ASSERT(r == 0);
        FUZZ_ASSERT(n == size && memcmp(text, file, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *file;
        size_t n;

        fuzz_init_crypto();
        if (size > KVFILE_SIZE_MAX)
                return 0;
        check((const char *) data, size, NULL); /* raw: the framing in front of the parser */
        file = fuzz_kvfile_seal(data, size, &n);
        check(file, n, NULL);
        check(file, n, "mail-creds");
        free(file);
        return 0;
}
