/* SPDX-License-Identifier: MIT */
/* libFuzzer: one audit log line (src/audit/audit-record.h audit_parse_line, pure). A record carries
 * its own hash: the harness parses the input as it is, and again with the hash made right, so the
 * field parsers behind the hash check are reached. */
#include <errno.h>

#include "audit-record.h"
#include "fuzz.h"

#define HASH_FIELD " hash="

/* A fixed key pair, so checkpoint lines can be signed and verified alike. */
static void signing_key(Secret **ret_sk, uint8_t pk[CRYPT_SIGN_PUBLIC_KEY_BYTES]) {
        static Secret *sk;
        static uint8_t public[CRYPT_SIGN_PUBLIC_KEY_BYTES];

        if (!sk) {
                _cleanup_secret_ Secret *seed = NULL;
                uint8_t s[CRYPT_SIGN_SEED_BYTES] = { 0x42 };

                FUZZ_ASSERT(secret_new_copy(s, sizeof(s), &seed) == 0);
                FUZZ_ASSERT(crypt_sign_seed_keypair(seed, &sk, public) == 0);
        }
        *ret_sk = sk;
        memcpy(pk, public, sizeof(public));
}

static void check(const char *line, size_t len) {
        static char buf[AUDIT_LINE_MAX + 1];
        uint8_t hash[CRYPT_HASH_BYTES], pk[CRYPT_SIGN_PUBLIC_KEY_BYTES];
        char why[256] = "";
        size_t signed_len = 0, n = 0;
        Secret *sk;
        AuditEntry e;
        int r;

        r = audit_parse_line(line, len, &e, &signed_len, why, sizeof(why));
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG && why[0] && memchr(why, 0, sizeof(why)));
                return;
        }
        FUZZ_ASSERT(e.seq > 0);
        signing_key(&sk, pk);
        if (e.is_checkpoint) {
                FUZZ_ASSERT(signed_len > 0 && signed_len < len && e.interval > 0);
                (void) audit_checkpoint_verify(line, signed_len, e.sig, pk);
                /* Re-signed with our key, the same fields give a line that verifies. */
                FUZZ_ASSERT(audit_format_checkpoint(e.seq, e.time, e.reason, e.interval, e.prev, sk, buf, &n, hash) ==
                            0);
                FUZZ_ASSERT(n > 0 && buf[n - 1] == '\n');
                FUZZ_ASSERT(audit_parse_line(buf, n - 1, &e, &signed_len, why, sizeof(why)) == 0);
                FUZZ_ASSERT(audit_checkpoint_verify(buf, signed_len, e.sig, pk) == 0);
                FUZZ_ASSERT(memcmp(e.hash, hash, sizeof(hash)) == 0);
                return;
        }
        /* An event line has one spelling: formatting the parsed record gives back the line. */
        {
                AuditRecord rec = {
                        .event = e.event,
                        .outcome = e.outcome,
                        .uid = (uid_t) e.uid,
                        .pid = (pid_t) e.pid,
                        .comm = e.comm,
                        .object = e.object,
                        .detail = e.detail,
                };

                FUZZ_ASSERT(audit_record_check(&rec) == 0);
                r = audit_format_event(e.seq, e.time, &rec, e.prev, buf, &n, hash);
                FUZZ_ASSERT(r == 0);
                FUZZ_ASSERT(n == len + 1 && memcmp(buf, line, len) == 0 && buf[len] == '\n');
                FUZZ_ASSERT(memcmp(hash, e.hash, sizeof(hash)) == 0);
        }
}

/* The line with the hex after its last " hash=" replaced by the hash of what precedes it. */
static char *fix_hash(const char *line, size_t len, size_t *ret_len) {
        static const char digits[] = "0123456789abcdef";
        const char *h = NULL;
        uint8_t sum[CRYPT_HASH_BYTES];
        size_t pre;
        char *out;

        for (const char *p = line; (p = memmem(p, len - (size_t) (p - line), HASH_FIELD, strlen(HASH_FIELD))); p++)
                h = p;
        if (!h)
                return NULL;
        pre = (size_t) (h - line);
        out = malloc(pre + strlen(HASH_FIELD) + 2 * CRYPT_HASH_BYTES);
        FUZZ_ASSERT(out);
        memcpy(out, line, pre + strlen(HASH_FIELD));
        crypt_hash(line, pre, sum);
        for (size_t i = 0; i < sizeof(sum); i++) {
                out[pre + strlen(HASH_FIELD) + 2 * i] = digits[sum[i] >> 4];
                out[pre + strlen(HASH_FIELD) + 2 * i + 1] = digits[sum[i] & 15];
        }
        *ret_len = pre + strlen(HASH_FIELD) + 2 * CRYPT_HASH_BYTES;
        return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t len = size, n;
        char *fixed;

        fuzz_init_crypto();
        if (size > 2 * AUDIT_LINE_MAX)
                return 0;
        /* A log file's line arrives without its newline. */
        if (len > 0 && data[len - 1] == '\n')
                len--;
        check((const char *) data, len);
        fixed = fix_hash((const char *) data, len, &n);
        if (fixed) {
                check(fixed, n);
                free(fixed);
        }
        return 0;
}
