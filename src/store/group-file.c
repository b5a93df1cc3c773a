/* SPDX-License-Identifier: MIT */
/* Parse and format group files, and the small pure helpers on loaded groups. No I/O: fuzzable alone. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "group-file.h"

static const char *const state_names[] = {
        [GENERATION_PENDING] = "pending",
        [GENERATION_ACTIVE] = "active",
        [GENERATION_ARCHIVED] = "archived",
        [GENERATION_RETIRED] = "retired",
};

const char *generation_state_to_string(GenerationState s) {
        if ((unsigned) s >= ELEMENTSOF(state_names))
                return NULL;
        return state_names[s];
}

int generation_state_from_string(const char *s, GenerationState *ret) {
        for (size_t i = 0; i < ELEMENTSOF(state_names); i++)
                if (s && strcmp(s, state_names[i]) == 0) {
                        *ret = (GenerationState) i;
                        return 0;
                }
        return -EINVAL;
}

StoreGroup *store_group_free(StoreGroup *g) {
        if (!g)
                return NULL;
        free(g->name);
        free(g->generations);
        free(g);
        return NULL;
}

const StoreGeneration *store_group_find_generation(const StoreGroup *g, uint32_t number) {
        /* Ascending and usually contiguous from 1: try the direct index before searching. */
        if (number >= 1 && number <= g->n_generations && g->generations[number - 1].number == number)
                return &g->generations[number - 1];
        for (size_t i = 0; i < g->n_generations; i++)
                if (g->generations[i].number == number)
                        return &g->generations[i];
        return NULL;
}

const StoreGeneration *store_group_active_generation(const StoreGroup *g) {
        for (size_t i = g->n_generations; i > 0; i--)
                if (g->generations[i - 1].state == GENERATION_ACTIVE)
                        return &g->generations[i - 1];
        return NULL;
}

int store_group_policy_check(const StoreGroupPolicy *p) {
        if (p->hot_window > STORE_HOT_WINDOW_MAX || p->max_grant_usec == 0 || p->request_timeout_usec == 0)
                return -EINVAL;
        return group_file_check_approval_levels(p->approval_levels, p->n_approval_levels);
}

int group_file_check_approval_levels(const gid_t *levels, size_t n) {
        if (n > STORE_APPROVAL_LEVELS_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (levels[i] == (gid_t) -1)
                        return -EINVAL;
                /* Two levels of one group would let one group approve twice. */
                for (size_t j = 0; j < i; j++)
                        if (levels[j] == levels[i])
                                return -EINVAL;
        }
        return 0;
}

bool store_group_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > STORE_GROUP_NAME_MAX)
                return false;
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789", name[0]))
                return false;
        return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

int group_file_append_generation(StoreGroup *g, StoreGeneration **ret) {
        StoreGeneration *a;

        /* Capacity is implicit: 4, then doubled whenever the count reaches a power of two. */
        if (g->n_generations == 0 || (g->n_generations >= 4 && (g->n_generations & (g->n_generations - 1)) == 0)) {
                size_t want = g->n_generations ? g->n_generations * 2 : 4;
                if (want > SIZE_MAX / sizeof(*a))
                        return -ENOMEM;
                a = realloc(g->generations, want * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                g->generations = a;
        }
        a = &g->generations[g->n_generations++];
        *a = (StoreGeneration) {};
        *ret = a;
        return 0;
}

/* The header, in the one order the writer uses. */
enum {
        KEY_FORMAT,
        KEY_NAME,
        KEY_ID,
        KEY_GID,
        KEY_ALGORITHM,
        KEY_ROLLOVER,
        KEY_DELAY,
        KEY_HOT_WINDOW,
        KEY_HUMANS,
        KEY_APPROVAL_LEVELS,
        KEY_MAX_GRANT,
        KEY_REQUEST_TIMEOUT,
        KEY_RETIRE_APPROVAL,
        KEY_KEK,
        _KEY_MAX,
};
static const char *const header_keys[_KEY_MAX] = {
        [KEY_FORMAT] = "format",     [KEY_NAME] = "name",
        [KEY_ID] = "id",             [KEY_GID] = "gid",
        [KEY_ALGORITHM] = "algorithm", [KEY_ROLLOVER] = "rollover-period-usec",
        [KEY_DELAY] = "propagation-delay-usec", [KEY_HOT_WINDOW] = "hot-window",
        [KEY_HUMANS] = "allow-human-members",
        [KEY_APPROVAL_LEVELS] = "approval-levels", [KEY_MAX_GRANT] = "max-grant-usec",
        [KEY_REQUEST_TIMEOUT] = "request-timeout-usec", [KEY_RETIRE_APPROVAL] = "retire-needs-approval",
        [KEY_KEK] = "kek",
};

int group_file_parse_approval_levels(const char *v, gid_t levels[static STORE_APPROVAL_LEVELS_MAX], uint32_t *ret_n,
                                     unsigned line, KvError *e) {
        char copy[STORE_APPROVAL_LEVELS_MAX * 11 + 1];
        char *f[STORE_APPROVAL_LEVELS_MAX];
        size_t n = 0;
        uint64_t u;

        if (strlen(v) >= sizeof(copy))
                return kverror_set(e, line, "more than %u approval levels", STORE_APPROVAL_LEVELS_MAX);
        strcpy(copy, v);
        if (*copy && kv_split_fields(copy, f, ELEMENTSOF(f), &n) < 0)
                return kverror_set(e, line, "malformed approval levels");
        for (size_t i = 0; i < n; i++) {
                if (kv_parse_u64(f[i], UINT32_MAX - 1, &u) < 0)
                        return kverror_set(e, line, "malformed approval level gid");
                for (size_t j = 0; j < i; j++)
                        if (levels[j] == (gid_t) u)
                                return kverror_set(e, line, "gid %u appears at two approval levels", (unsigned) u);
                levels[i] = (gid_t) u;
        }
        *ret_n = (uint32_t) n;
        return 0;
}

void group_file_format_approval_levels(KvBuf *b, const gid_t *levels, uint32_t n) {
        for (size_t i = 0; i < n; i++)
                kvbuf_printf(b, "%s%u", i > 0 ? " " : "", (unsigned) levels[i]);
}

bool group_kek_destroyed(const StoreGroup *g) {
        uint8_t acc = 0;

        for (size_t i = 0; i < sizeof(g->wrapped_kek); i++)
                acc |= g->wrapped_kek[i];
        return acc == 0;
}

static int parse_header_value(StoreGroup *g, unsigned k, const char *v, const char *expected_name, unsigned line,
                              KvError *e) {
        uint64_t u;

        switch (k) {
        case KEY_FORMAT:
                return kv_parse_format(v, GROUP_FILE_FORMAT, "group file", line, e);
        case KEY_NAME:
                if (!store_group_name_is_valid(v))
                        return kverror_set(e, line, "invalid group name");
                if (expected_name && strcmp(v, expected_name) != 0)
                        return kverror_set(e, line, "name '%s' does not match the file name", v);
                g->name = strdup(v);
                return g->name ? 0 : -ENOMEM;
        case KEY_ID:
                if (kv_parse_hex(v, g->id, sizeof(g->id)) < 0)
                        return kverror_set(e, line, "id is not %u lowercase hex bytes", STORE_GROUP_ID_BYTES);
                return 0;
        case KEY_GID:
                if (kv_parse_u64(v, UINT32_MAX - 1, &u) < 0)
                        return kverror_set(e, line, "malformed gid");
                g->gid = (gid_t) u;
                return 0;
        case KEY_ALGORITHM:
                if (crypt_alg_from_string(v, &g->alg) < 0)
                        return kverror_set(e, line, "unknown algorithm");
                return 0;
        case KEY_ROLLOVER:
                if (kv_parse_u64(v, UINT64_MAX, &g->policy.rollover_period_usec) < 0)
                        return kverror_set(e, line, "malformed rollover period");
                return 0;
        case KEY_DELAY:
                if (kv_parse_u64(v, UINT64_MAX, &g->policy.propagation_delay_usec) < 0)
                        return kverror_set(e, line, "malformed propagation delay");
                return 0;
        case KEY_HOT_WINDOW:
                if (kv_parse_u64(v, STORE_HOT_WINDOW_MAX, &u) < 0)
                        return kverror_set(e, line, "hot window is not a number up to %u", STORE_HOT_WINDOW_MAX);
                g->policy.hot_window = (uint32_t) u;
                return 0;
        case KEY_HUMANS:
                if (kv_parse_u64(v, 1, &u) < 0)
                        return kverror_set(e, line, "allow-human-members must be 0 or 1");
                g->policy.allow_human_members = u == 1;
                return 0;
        case KEY_APPROVAL_LEVELS:
                return group_file_parse_approval_levels(v, g->policy.approval_levels, &g->policy.n_approval_levels,
                                                        line, e);
        case KEY_MAX_GRANT:
                if (kv_parse_u64(v, UINT64_MAX, &g->policy.max_grant_usec) < 0 || g->policy.max_grant_usec == 0)
                        return kverror_set(e, line, "malformed max grant");
                return 0;
        case KEY_REQUEST_TIMEOUT:
                if (kv_parse_u64(v, UINT64_MAX, &g->policy.request_timeout_usec) < 0 ||
                    g->policy.request_timeout_usec == 0)
                        return kverror_set(e, line, "malformed request timeout");
                return 0;
        case KEY_RETIRE_APPROVAL:
                if (kv_parse_u64(v, 1, &u) < 0)
                        return kverror_set(e, line, "retire-needs-approval must be 0 or 1");
                g->policy.retire_needs_approval = u == 1;
                return 0;
        case KEY_KEK:
                /* "-": destroyed by a purge, kept in memory as zero bytes, which no real wrapped key is. */
                if (strcmp(v, "-") == 0) {
                        memset(g->wrapped_kek, 0, sizeof(g->wrapped_kek));
                        return 0;
                }
                if (kv_parse_hex(v, g->wrapped_kek, sizeof(g->wrapped_kek)) < 0)
                        return kverror_set(e, line, "kek is not %u lowercase hex bytes", CRYPT_WRAPPED_KEY_BYTES);
                if (group_kek_destroyed(g))
                        return kverror_set(e, line, "kek is all zeros (a destroyed one is written '-')");
                return 0;
        }
        return -EINVAL;
}

/* "N state=S created=T activated=T archived=T retired=T key=HEX|-" */
static int parse_generation(StoreGroup *g, char *value, unsigned line, KvError *e) {
        static const char *const names[] = { "state", "created", "activated", "archived", "retired", "key" };
        const StoreGeneration *prev = g->n_generations > 0 ? &g->generations[g->n_generations - 1] : NULL;
        StoreGeneration *gen;
        char *f[1 + ELEMENTSOF(names)];
        const char *v[ELEMENTSOF(names)];
        uint64_t *times[4];
        size_t n;
        uint64_t u;
        int r;

        if (kv_split_fields(value, f, ELEMENTSOF(f), &n) < 0 || n != ELEMENTSOF(f))
                return kverror_set(e, line, "generation line needs a number and %zu fields", ELEMENTSOF(names));
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                size_t l = strlen(names[i]);
                if (strncmp(f[1 + i], names[i], l) != 0 || f[1 + i][l] != '=')
                        return kverror_set(e, line, "generation field %zu must be '%s='", i + 2, names[i]);
                v[i] = f[1 + i] + l + 1;
        }
        if (kv_parse_u64(f[0], UINT32_MAX, &u) < 0 || u == 0)
                return kverror_set(e, line, "malformed generation number");
        if (prev && u <= prev->number)
                return kverror_set(e, line, "generation %llu %s", (unsigned long long) u,
                                   u == prev->number ? "appears twice" : "is out of order");

        r = group_file_append_generation(g, &gen);
        if (r < 0)
                return r;
        gen->number = (uint32_t) u;
        if (generation_state_from_string(v[0], &gen->state) < 0)
                return kverror_set(e, line, "unknown generation state");
        times[0] = &gen->created_usec;
        times[1] = &gen->activated_usec;
        times[2] = &gen->archived_usec;
        times[3] = &gen->retired_usec;
        for (size_t i = 0; i < ELEMENTSOF(times); i++)
                if (kv_parse_u64(v[1 + i], UINT64_MAX, times[i]) < 0)
                        return kverror_set(e, line, "malformed %s time", names[1 + i]);
        if (gen->created_usec == 0 || (gen->state == GENERATION_ACTIVE && gen->activated_usec == 0) ||
            (gen->state == GENERATION_ARCHIVED && gen->archived_usec == 0) ||
            (gen->state == GENERATION_RETIRED && gen->retired_usec == 0))
                return kverror_set(e, line, "generation %u lacks the time of its state", gen->number);

        /* A tombstone has no key and only a tombstone lacks one: crypto-shredding is all or nothing. */
        if (strcmp(v[5], "-") == 0) {
                if (gen->state != GENERATION_RETIRED)
                        return kverror_set(e, line, "generation %u has no key but is not retired", gen->number);
                gen->has_key = false;
        } else {
                if (gen->state == GENERATION_RETIRED)
                        return kverror_set(e, line, "generation %u is retired but still has a key", gen->number);
                if (kv_parse_hex(v[5], gen->wrapped_key, sizeof(gen->wrapped_key)) < 0)
                        return kverror_set(e, line, "key is not %u lowercase hex bytes", CRYPT_WRAPPED_KEY_BYTES);
                gen->has_key = true;
        }
        return 0;
}

int group_file_parse(const char *data, size_t size, const char *expected_name, StoreGroup **ret, KvError *e) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        KvReader rd = {};
        unsigned next = 0, active_line = 0;
        size_t body;
        int r;

        /* Checksum before version: every format version keeps the first line "format=N" and the last line
         * "checksum=<BLAKE2b-256>", so corruption is never mistaken for a newer version. */
        r = kvfile_verify(data, size, &body, e);
        if (r < 0)
                return r;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        r = kvreader_init(&rd, data, body);
        if (r < 0)
                return r;

        while ((r = kvreader_next(&rd, e)) > 0) {
                unsigned k;

                if (strcmp(rd.key, "generation") == 0) {
                        if (next < _KEY_MAX) {
                                r = kverror_set(e, rd.line, "'%s' missing before the generations", header_keys[next]);
                                break;
                        }
                        r = parse_generation(g, rd.value, rd.line, e);
                        if (r < 0)
                                break;
                        if (g->generations[g->n_generations - 1].state == GENERATION_ACTIVE) {
                                if (active_line > 0) {
                                        r = kverror_set(e, rd.line, "second active generation (first on line %u)",
                                                        active_line);
                                        break;
                                }
                                active_line = rd.line;
                        }
                        continue;
                }
                for (k = 0; k < _KEY_MAX; k++)
                        if (strcmp(rd.key, header_keys[k]) == 0)
                                break;
                if (k == _KEY_MAX) {
                        r = kverror_set(e, rd.line, "unknown key '%.64s'", rd.key);
                        break;
                }
                if (k < next) {
                        /* also catches a header key after the generation lines */
                        r = kverror_set(e, rd.line, "duplicate key '%s'", rd.key);
                        break;
                }
                if (k > next) {
                        r = kverror_set(e, rd.line, "key '%s' out of order (expected '%s')", rd.key, header_keys[next]);
                        break;
                }
                r = parse_header_value(g, k, rd.value, expected_name, rd.line, e);
                if (r < 0)
                        break;
                next++;
        }
        kvreader_done(&rd);
        if (r < 0)
                return r;
        if (next < _KEY_MAX)
                return kverror_set(e, 0, "'%s' missing", header_keys[next]);
        if (g->n_generations == 0)
                return kverror_set(e, 0, "no generations");
        /* Without its KEK no generation key can be opened: only a fully retired group may lack it. */
        if (group_kek_destroyed(g))
                for (size_t i = 0; i < g->n_generations; i++)
                        if (g->generations[i].has_key)
                                return kverror_set(e, 0, "kek destroyed but generation %u still has a key",
                                                   g->generations[i].number);

        *ret = TAKE_PTR(g);
        return 0;
}

int group_file_format(const StoreGroup *g, char **ret, size_t *ret_size) {
        KvBuf b = {};
        int r;

        if (!store_group_name_is_valid(g->name) || !crypt_alg_to_string(g->alg) || g->n_generations == 0 ||
            store_group_policy_check(&g->policy) < 0)
                return -EINVAL;
        if (group_kek_destroyed(g))
                for (size_t i = 0; i < g->n_generations; i++)
                        if (g->generations[i].has_key)
                                return -EINVAL;

        kvbuf_printf(&b, "format=%d\nname=%s\nid=", GROUP_FILE_FORMAT, g->name);
        kvbuf_put_hex(&b, g->id, sizeof(g->id));
        kvbuf_printf(&b,
                     "\ngid=%u\nalgorithm=%s\nrollover-period-usec=%llu\npropagation-delay-usec=%llu\nhot-window=%u\n"
                     "allow-human-members=%d\napproval-levels=",
                     (unsigned) g->gid, crypt_alg_to_string(g->alg),
                     (unsigned long long) g->policy.rollover_period_usec,
                     (unsigned long long) g->policy.propagation_delay_usec, (unsigned) g->policy.hot_window,
                     g->policy.allow_human_members ? 1 : 0);
        group_file_format_approval_levels(&b, g->policy.approval_levels, g->policy.n_approval_levels);
        kvbuf_printf(&b, "\nmax-grant-usec=%llu\nrequest-timeout-usec=%llu\nretire-needs-approval=%d\nkek=",
                     (unsigned long long) g->policy.max_grant_usec,
                     (unsigned long long) g->policy.request_timeout_usec, g->policy.retire_needs_approval ? 1 : 0);
        if (group_kek_destroyed(g))
                kvbuf_printf(&b, "-");
        else
                kvbuf_put_hex(&b, g->wrapped_kek, sizeof(g->wrapped_kek));
        kvbuf_printf(&b, "\n");

        for (size_t i = 0; i < g->n_generations; i++) {
                const StoreGeneration *gen = &g->generations[i];

                if (!generation_state_to_string(gen->state)) {
                        kvbuf_done(&b);
                        return -EINVAL;
                }
                kvbuf_printf(&b, "generation=%u state=%s created=%llu activated=%llu archived=%llu retired=%llu key=",
                             gen->number, generation_state_to_string(gen->state),
                             (unsigned long long) gen->created_usec, (unsigned long long) gen->activated_usec,
                             (unsigned long long) gen->archived_usec, (unsigned long long) gen->retired_usec);
                if (gen->has_key)
                        kvbuf_put_hex(&b, gen->wrapped_key, sizeof(gen->wrapped_key));
                else
                        kvbuf_printf(&b, "-");
                kvbuf_printf(&b, "\n");
        }

        r = kvbuf_finish(&b, ret, ret_size);
        kvbuf_done(&b);
        return r;
}
