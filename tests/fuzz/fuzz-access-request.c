/* SPDX-License-Identifier: MIT */
/* libFuzzer: break-glass request files (src/access/access-request.h access_request_parse), and the
 * rules applied to what parsed. The corpus holds bodies; the harness appends the checksum line. */
#include <errno.h>

#include "access-request.h"
#include "fuzz.h"
#include "kvfile.h"

/* What dkmd saves must load again (access_request_save() refuses anything else, and a request
 * that cannot be saved is a step dkmd cannot take): format, parse, compare. */
static void check_saves(const AccessRequest *r) {
        _cleanup_free_ char *text = NULL, *again = NULL;
        AccessRequest back;
        char error[256] = "";
        size_t n = 0, m = 0;
        int k;

        k = access_request_format(r, &text, &n);
        if (k < 0) {
                fprintf(stderr, "request %llu in state %s cannot be saved: %s\n", (unsigned long long) r->id,
                        access_state_to_string(r->state), strerror(-k));
                abort();
        }
        k = access_request_parse(text, n, r->id, &back, error, sizeof(error));
        if (k < 0) {
                fprintf(stderr, "request %llu does not load again: %s\n", (unsigned long long) r->id, error);
                abort();
        }
        FUZZ_ASSERT(access_request_format(&back, &again, &m) == 0);
        FUZZ_ASSERT(m == n && memcmp(again, text, n) == 0);
}

/* Play one step of the flow on r as a caller the seed picks: the requester, someone who
 * approved, a member of a level, or a stranger; at a time between creation and the deadline. */
static void play(AccessRequest r, uint64_t seed, const uint8_t *data, size_t size) {
        gid_t gids[2];
        AccessCaller c = { .gids = gids };
        uint64_t x = fuzz_next(&seed), now;
        char *reason = fuzz_strndup(data, MIN(size, (size_t) 2 * ACCESS_JUSTIFICATION_MAX));
        int k;

        switch (x % 4) {
        case 0:
                c.uid = r.requester;
                break;
        case 1:
                c.uid = r.n_approvals > 0 ? r.approvals[fuzz_next(&seed) % r.n_approvals].uid : 4242;
                break;
        default:
                c.uid = (uid_t) (fuzz_next(&seed) % 5000);
        }
        if (x & 16)
                gids[c.n_gids++] = r.levels[fuzz_next(&seed) % r.n_levels];
        if (x & 32)
                gids[c.n_gids++] = (gid_t) (fuzz_next(&seed) % 5000);
        now = r.created_usec + fuzz_next(&seed) % (r.deadline_usec - r.created_usec);

        k = access_check_approve(&r, &c, now);
        if (k >= 0) {
                FUZZ_ASSERT((size_t) k == r.n_approvals && access_caller_in_group(&c, r.levels[k]));
                FUZZ_ASSERT(c.uid != r.requester);
                k = access_approve(&r, &c, now);
                FUZZ_ASSERT(k == 0 || k == 1);
                if (k == 1 && r.kind == ACCESS_KIND_ACCESS)
                        access_grant(&r, now);
                else if (k == 1 && r.kind == ACCESS_KIND_PURGE) /* dkmd waits the store policy's delay */
                        access_schedule(&r, now,
                                        STORE_PURGE_DELAY_MIN_USEC + fuzz_next(&seed) % STORE_PURGE_DELAY_MAX_USEC);
                else if (k == 1) /* retire, protector-add, protector-remove: carried out at once */
                        access_close(&r, x & 8 ? ACCESS_STATE_DONE : ACCESS_STATE_FAILED, 0, reason, now);
                check_saves(&r);
        } else if (access_check_deny(&r, &c, reason, now) == 0) {
                FUZZ_ASSERT(c.uid != r.requester);
                access_close(&r, ACCESS_STATE_DENIED, c.uid, reason, now);
                check_saves(&r);
        } else if (access_check_cancel(&r, &c, now) == 0) {
                /* The requester; a scheduled purge also anyone who could have stopped it before (a
                 * member of one of its levels). */
                bool approver = false;

                for (size_t i = 0; i < r.n_levels; i++)
                        approver = approver || access_caller_in_group(&c, r.levels[i]);
                FUZZ_ASSERT(c.uid == r.requester || (r.state == ACCESS_STATE_SCHEDULED && approver));
                access_close(&r, ACCESS_STATE_CANCELLED, c.uid, NULL, now);
                check_saves(&r);
        } else if (access_check_revoke(&r, &c) == 0) {
                FUZZ_ASSERT(r.state == ACCESS_STATE_GRANTED);
                access_close(&r, ACCESS_STATE_REVOKED, c.uid, NULL, now);
                check_saves(&r);
        } else if (r.state == ACCESS_STATE_SCHEDULED) {
                /* dkmd's timer: the purge ran (or failed) at its time. */
                access_close(&r, x & 8 ? ACCESS_STATE_DONE : ACCESS_STATE_FAILED, 0, x & 8 ? NULL : reason,
                             r.expires_usec);
                check_saves(&r);
        } else if (r.state == ACCESS_STATE_PENDING) {
                /* dkmd's timer: expired, with no reason; or failed while being carried out, with
                 * any reason at all (strerror text, say), sanitized by access_close(). */
                access_close(&r, ACCESS_STATE_EXPIRED, 0, NULL, r.deadline_usec);
                check_saves(&r);
        }
        free(reason);
}

/* Every field, compared one by one (a struct's padding is not part of it). */
static bool requests_equal(const AccessRequest *a, const AccessRequest *b) {
        if (a->id != b->id || a->kind != b->kind || strcmp(a->group, b->group) != 0 || a->generation != b->generation ||
            strcmp(a->target, b->target) != 0 || strcmp(a->spec, b->spec) != 0 || a->requester != b->requester ||
            strcmp(a->justification, b->justification) != 0 || a->duration_usec != b->duration_usec ||
            a->created_usec != b->created_usec || a->deadline_usec != b->deadline_usec || a->n_levels != b->n_levels ||
            a->n_approvals != b->n_approvals || a->state != b->state || a->granted_usec != b->granted_usec ||
            a->expires_usec != b->expires_usec || a->closed_usec != b->closed_usec || a->closed_by != b->closed_by ||
            strcmp(a->reason, b->reason) != 0)
                return false;
        for (size_t i = 0; i < a->n_levels; i++)
                if (a->levels[i] != b->levels[i])
                        return false;
        for (size_t i = 0; i < a->n_approvals; i++)
                if (a->approvals[i].uid != b->approvals[i].uid || a->approvals[i].usec != b->approvals[i].usec)
                        return false;
        return true;
}

static void check(const char *file, size_t size, uint64_t expected_id, const uint8_t *data, size_t data_size) {
        _cleanup_free_ char *text = NULL;
        AccessRequest r;
        char error[256];
        size_t n = 0;
        int k;

        memset(error, 'x', sizeof(error));
        k = access_request_parse(file, size, expected_id, &r, error, sizeof(error));
        if (k < 0) {
                FUZZ_ASSERT(k == -EBADMSG || k == -EPROTONOSUPPORT);
                FUZZ_ASSERT(memchr(error, 0, sizeof(error)));
                return;
        }
        FUZZ_ASSERT(expected_id == 0 || r.id == expected_id);
        FUZZ_ASSERT(r.n_levels >= 1 && r.n_levels <= STORE_APPROVAL_LEVELS_MAX && r.n_approvals <= r.n_levels);
        FUZZ_ASSERT(r.deadline_usec > r.created_usec);
        k = access_request_format(&r, &text, &n);
        FUZZ_ASSERT(k == 0);
        /* What parsed starts with a canonical "format=N" line (keys in order, numbers canonical). */
        if (size >= strlen("format=1\n") && memcmp(file, "format=1\n", strlen("format=1\n")) == 0) {
                /* Format 1 (dkm before the store-wide kinds) still loads, but dkm writes format 2
                 * only: the text cannot come back byte for byte (format=2, the target= and spec=
                 * lines, so another checksum). What must hold instead: format 1 has no place for a
                 * target or a spec, and the format-2 text says the same request, which itself
                 * round-trips byte for byte. */
                _cleanup_free_ char *again = NULL;
                AccessRequest back;
                char why[256] = "";
                size_t m = 0;

                FUZZ_ASSERT(r.target[0] == 0 && r.spec[0] == 0);
                FUZZ_ASSERT(n == size + strlen("target=\nspec=\n") && memcmp(text, "format=2\n", strlen("format=2\n")) == 0);
                FUZZ_ASSERT(access_request_parse(text, n, r.id, &back, why, sizeof(why)) == 0);
                FUZZ_ASSERT(requests_equal(&r, &back));
                FUZZ_ASSERT(access_request_format(&back, &again, &m) == 0);
                FUZZ_ASSERT(m == n && memcmp(again, text, n) == 0);
        } else
                /* Canonical: the writer gives back the very file. */
                FUZZ_ASSERT(n == size && memcmp(text, file, size) == 0);
        play(r, fuzz_seed(data, data_size), data, data_size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *file;
        size_t n;

        fuzz_init_crypto();
        if (size > KVFILE_SIZE_MAX)
                return 0;
        check((const char *) data, size, 0, data, size);
        file = fuzz_kvfile_seal(data, size, &n);
        check(file, n, 0, data, size);
        check(file, n, 7, data, size);
        free(file);
        return 0;
}
