/* SPDX-License-Identifier: MIT */
/* libFuzzer: kvfile framing and value parsing (src/store/kvfile.h), raw and with a valid checksum. */
#include <errno.h>
#include <inttypes.h>

#include "fuzz.h"
#include "kvfile.h"

/* Each strict value parser accepts only the canonical spelling: formatting what it parsed gives
 * back the same text (kvfile.h: "so format(parse(x)) == x"). */
static void check_value(const char *value) {
        size_t len = strlen(value);
        char *copy, *fields[8], *u;
        uint8_t bin[64];
        uint64_t v;
        size_t n;

        if (kv_parse_u64(value, UINT64_MAX, &v) == 0) {
                char buf[32];

                snprintf(buf, sizeof(buf), "%" PRIu64, v);
                FUZZ_ASSERT(strcmp(buf, value) == 0);
        }
        if (len % 2 == 0 && len / 2 <= sizeof(bin) && kv_parse_hex(value, bin, len / 2) == 0) {
                KvBuf b = {};

                kvbuf_put_hex(&b, bin, len / 2);
                FUZZ_ASSERT(b.error == 0 && b.size == len && memcmp(b.data ?: "", value, len) == 0);
                kvbuf_done(&b);
        }
        if (kv_unescape(value, 1024, &u) == 0) {
                KvBuf b = {};

                FUZZ_ASSERT(strlen(u) <= 1024);
                kvbuf_put_escaped(&b, u);
                FUZZ_ASSERT(b.error == 0 && b.size == len && memcmp(b.data ?: "", value, len) == 0);
                kvbuf_done(&b);
                free(u);
        }
        copy = strdup(value);
        FUZZ_ASSERT(copy);
        if (kv_split_fields(copy, fields, ELEMENTSOF(fields), &n) == 0) {
                size_t k = 0;

                FUZZ_ASSERT(n >= 1 && n <= ELEMENTSOF(fields));
                for (size_t i = 0; i < n; i++) {
                        size_t l = strlen(fields[i]);

                        FUZZ_ASSERT(l > 0 && !strchr(fields[i], ' '));
                        FUZZ_ASSERT(memcmp(value + k, fields[i], l) == 0);
                        k += l;
                        FUZZ_ASSERT(i + 1 == n ? value[k] == 0 : value[k] == ' ');
                        k++;
                }
        }
        free(copy);
}

static void check_file(const char *data, size_t size) {
        KvReader rd = {};
        KvError e = {};
        size_t body = 0;
        int r;

        r = kvfile_verify(data, size, &body, &e);
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG);
                FUZZ_ASSERT(memchr(e.msg, 0, sizeof(e.msg)));
                return;
        }
        FUZZ_ASSERT(body < size && !memchr(data, 0, size));
        FUZZ_ASSERT(body == 0 || data[body - 1] == '\n');
        FUZZ_ASSERT(kvreader_init(&rd, data, body) == 0);
        while ((r = kvreader_next(&rd, &e)) > 0) {
                FUZZ_ASSERT(*rd.key && strspn(rd.key, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(rd.key));
                FUZZ_ASSERT(!strchr(rd.value, '\n'));
                check_value(rd.value);
        }
        FUZZ_ASSERT(r == 0 || r == -EBADMSG);
        kvreader_done(&rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *sealed;
        size_t n;

        fuzz_init_crypto();
        if (size > KVFILE_SIZE_MAX + 1)
                return 0;
        check_file((const char *) data, size);

        /* The same bytes as the body of a file with the right checksum: only a NUL byte or the
         * size bound may refuse its framing. */
        sealed = fuzz_kvfile_seal(data, size, &n);
        {
                size_t body = 0;
                int r = kvfile_verify(sealed, n, &body, NULL);

                FUZZ_ASSERT((r == 0) == (!memchr(data, 0, size) && n <= KVFILE_SIZE_MAX));
        }
        check_file(sealed, n);
        free(sealed);
        return 0;
}
