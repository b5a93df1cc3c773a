/* SPDX-License-Identifier: MIT */
/* Load manifest parser and writer. Pure: no I/O, no logging; errors never quote the input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyring-manifest.h"

static const char *const gen_state_names[] = {
        [KEYRING_GEN_PENDING] = "pending",
        [KEYRING_GEN_ACTIVE] = "active",
        [KEYRING_GEN_ARCHIVED] = "archived",
};

const char *keyring_gen_state_to_string(KeyringGenState s) {
        if ((size_t) s >= ELEMENTSOF(gen_state_names))
                return NULL;
        return gen_state_names[s];
}

int keyring_gen_state_from_string(const char *s, size_t size, KeyringGenState *ret) {
        for (size_t i = 0; i < ELEMENTSOF(gen_state_names); i++)
                if (strlen(gen_state_names[i]) == size && memcmp(s, gen_state_names[i], size) == 0) {
                        *ret = (KeyringGenState) i;
                        return 0;
                }
        return -EINVAL;
}

int keyring_manifest_new(const char *group, const uint8_t group_id[KEYRING_GROUP_ID_BYTES], gid_t gid, CryptAlg alg,
                         KeyringManifest **ret) {
        KeyringManifest *m;

        if (!keyring_group_name_is_valid(group) || gid == (gid_t) -1 || !crypt_alg_to_string(alg))
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        /* Allocated at the limits once: they are small, and parsing then never reallocates. */
        m->members = calloc(KEYRING_MANIFEST_MEMBERS_MAX, sizeof(uid_t));
        m->generations = calloc(KEYRING_MANIFEST_GENERATIONS_MAX, sizeof(KeyringManifestGeneration));
        if (!m->members || !m->generations) {
                keyring_manifest_free(m);
                return -ENOMEM;
        }
        strcpy(m->group, group);
        memcpy(m->group_id, group_id, KEYRING_GROUP_ID_BYTES);
        m->gid = gid;
        m->alg = alg;
        *ret = m;
        return 0;
}

KeyringManifest *keyring_manifest_free(KeyringManifest *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_generations; i++)
                secret_free(m->generations[i].key);
        free(m->generations);
        free(m->members);
        free(m);
        return NULL;
}

int keyring_manifest_add_member(KeyringManifest *m, uid_t uid) {
        /* Not root: linking a group keyring into root's user keyring would let every root
         * process possess it, and the owner's search bit would then let them read the keys. */
        if (uid == 0 || uid == (uid_t) -1)
                return -EINVAL;
        if (m->n_members >= KEYRING_MANIFEST_MEMBERS_MAX)
                return -E2BIG;
        if (m->n_members > 0 && m->members[m->n_members - 1] >= uid)
                return -EINVAL;
        m->members[m->n_members++] = uid;
        return 0;
}

static int add_generation_take(KeyringManifest *m, uint32_t number, KeyringGenState state, Secret *key) {
        if (number == 0 || !keyring_gen_state_to_string(state) || !key || key->size != KEYRING_KEY_BYTES)
                return -EINVAL;
        if (m->n_generations >= KEYRING_MANIFEST_GENERATIONS_MAX)
                return -E2BIG;
        if (m->n_generations > 0 && m->generations[m->n_generations - 1].number >= number)
                return -EINVAL;
        m->generations[m->n_generations++] = (KeyringManifestGeneration){
                .number = number,
                .state = state,
                .key = key,
        };
        return 0;
}

int keyring_manifest_add_generation(KeyringManifest *m, uint32_t number, KeyringGenState state, const Secret *key) {
        _cleanup_secret_ Secret *copy = NULL;
        int r;

        if (!key || key->size != KEYRING_KEY_BYTES)
                return -EINVAL;
        r = secret_new_copy(key->data, key->size, &copy);
        if (r < 0)
                return r;
        r = add_generation_take(m, number, state, copy);
        if (r < 0)
                return r;
        TAKE_PTR(copy);
        return 0;
}

const KeyringManifestGeneration *keyring_manifest_find_generation(const KeyringManifest *m, uint32_t number) {
        for (size_t i = 0; i < m->n_generations; i++)
                if (m->generations[i].number == number)
                        return &m->generations[i];
        return NULL;
}

bool keyring_manifest_has_member(const KeyringManifest *m, uid_t uid) {
        for (size_t i = 0; i < m->n_members; i++)
                if (m->members[i] == uid)
                        return true;
        return false;
}

static int fail(KeyringManifestError *error, unsigned line, const char *message) {
        if (error)
                *error = (KeyringManifestError){ .line = line, .message = message };
        return -EBADMSG;
}

int keyring_manifest_validate(const KeyringManifest *m, KeyringManifestError *error) {
        size_t n_active = 0, n_pending = 0;
        bool pending_found = false;

        if (!keyring_group_name_is_valid(m->group))
                return fail(error, 0, "invalid group name");
        if (m->gid == (gid_t) -1)
                return fail(error, 0, "invalid gid");
        if (!crypt_alg_to_string(m->alg))
                return fail(error, 0, "unknown algorithm");
        if (m->active == 0)
                return fail(error, 0, "no active generation");
        if (m->pending == m->active)
                return fail(error, 0, "the pending generation is the active one");
        if (m->n_generations == 0)
                return fail(error, 0, "no generations");
        for (size_t i = 0; i < m->n_members; i++)
                if (m->members[i] == 0 || m->members[i] == (uid_t) -1 || (i > 0 && m->members[i - 1] >= m->members[i]))
                        return fail(error, 0, "member uids must be non-root, valid and strictly ascending");
        for (size_t i = 0; i < m->n_generations; i++) {
                const KeyringManifestGeneration *g = &m->generations[i];

                if (g->number == 0 || (i > 0 && m->generations[i - 1].number >= g->number))
                        return fail(error, 0, "generation numbers must be non-zero and strictly ascending");
                if (!g->key || g->key->size != KEYRING_KEY_BYTES)
                        return fail(error, 0, "generation key must be 32 bytes");
                if (g->state == KEYRING_GEN_ACTIVE) {
                        n_active++;
                        if (g->number != m->active)
                                return fail(error, 0, "an active generation other than the one named by \"active\"");
                } else if (g->state == KEYRING_GEN_PENDING) {
                        n_pending++;
                        if (g->number == m->pending)
                                pending_found = true;
                } else if (g->state != KEYRING_GEN_ARCHIVED)
                        return fail(error, 0, "unknown generation state");
        }
        if (n_active != 1)
                return fail(error, 0, "the generation named by \"active\" is not listed as active");
        if (m->pending != 0 && !pending_found)
                return fail(error, 0, "the generation named by \"pending\" is not listed as pending");
        if (m->pending == 0 && n_pending > 0)
                return fail(error, 0, "pending generations listed but \"pending\" is 0");
        return 0;
}

typedef struct Parser {
        const char *text;
        size_t size;
        size_t pos;
        unsigned line_no;
        const char *line; /* current line, without its newline */
        size_t len;
} Parser;

/* -EBADMSG at end of input, or on a line that is unterminated, too long or has a NUL or CR. */
static int next_line(Parser *p, KeyringManifestError *error) {
        const char *nl;
        size_t max;

        if (p->pos >= p->size)
                return fail(error, p->line_no + 1, "unexpected end of input (truncated manifest?)");
        p->line_no++;
        max = MIN(p->size - p->pos, (size_t) KEYRING_MANIFEST_LINE_MAX + 1);
        nl = memchr(p->text + p->pos, '\n', max);
        if (!nl)
                return fail(error, p->line_no,
                            max > KEYRING_MANIFEST_LINE_MAX ? "line too long"
                                                            : "unterminated last line (truncated manifest?)");
        p->line = p->text + p->pos;
        p->len = (size_t) (nl - p->line);
        p->pos += p->len + 1;
        if (memchr(p->line, 0, p->len) || memchr(p->line, '\r', p->len))
                return fail(error, p->line_no, "NUL or carriage return in line");
        return 0;
}

/* If the current line is "<keyword> <value>", point at the value. */
static bool line_is(const Parser *p, const char *keyword, const char **ret_value, size_t *ret_size) {
        size_t k = strlen(keyword);

        if (p->len < k + 2 || memcmp(p->line, keyword, k) != 0 || p->line[k] != ' ')
                return false;
        *ret_value = p->line + k + 1;
        *ret_size = p->len - k - 1;
        return true;
}

static int expect(Parser *p, const char *keyword, const char **ret_value, size_t *ret_size, const char *message,
                  KeyringManifestError *error) {
        int r = next_line(p, error);
        if (r < 0)
                return r;
        if (!line_is(p, keyword, ret_value, ret_size))
                return fail(error, p->line_no, message);
        return 0;
}

static int expect_u32(Parser *p, const char *keyword, uint32_t *ret, const char *message, KeyringManifestError *error) {
        const char *v;
        size_t n;
        int r;

        r = expect(p, keyword, &v, &n, message, error);
        if (r < 0)
                return r;
        if (keyring_parse_u32(v, n, ret) < 0)
                return fail(error, p->line_no, "not a decimal number in range");
        return 0;
}

/* Key hex is decoded without branching on its digits, into secret memory. */
static int decode_key(const char *hex, size_t size, Secret **ret) {
        _cleanup_secret_ Secret *key = NULL;
        unsigned bad = 0;
        int r;

        if (size != 2 * KEYRING_KEY_BYTES)
                return -EINVAL;
        r = secret_new(KEYRING_KEY_BYTES, &key);
        if (r < 0)
                return r;
        for (size_t i = 0; i < size; i++) {
                unsigned c = (unsigned char) hex[i];
                unsigned is_digit = ((c - '0') <= 9U);
                unsigned is_lower = ((c - 'a') <= 5U);
                unsigned v = (c - '0') * is_digit + (c - 'a' + 10U) * is_lower;

                bad |= !(is_digit | is_lower);
                if (i % 2 == 0)
                        key->data[i / 2] = (uint8_t) (v << 4);
                else
                        key->data[i / 2] |= (uint8_t) (v & 15U);
        }
        if (bad)
                return -EINVAL;
        *ret = TAKE_PTR(key);
        return 0;
}

static int parse_generation(Parser *p, KeyringManifest *m, const char *v, size_t n, KeyringManifestError *error) {
        _cleanup_secret_ Secret *key = NULL;
        const char *sp1, *sp2;
        KeyringGenState state;
        uint32_t number;
        int r;

        sp1 = memchr(v, ' ', n);
        sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t) (sp1 + 1 - v)) : NULL;
        if (!sp2)
                return fail(error, p->line_no, "expected \"generation N STATE KEY\"");
        if (keyring_parse_u32(v, (size_t) (sp1 - v), &number) < 0 || number == 0)
                return fail(error, p->line_no, "generation number must be a positive decimal number");
        if (keyring_gen_state_from_string(sp1 + 1, (size_t) (sp2 - sp1 - 1), &state) < 0)
                return fail(error, p->line_no, "unknown generation state (want active, pending or archived)");
        if (m->n_generations >= KEYRING_MANIFEST_GENERATIONS_MAX)
                return fail(error, p->line_no, "too many generations");
        if (m->n_generations > 0 && m->generations[m->n_generations - 1].number >= number)
                return fail(error, p->line_no, "generation numbers must be strictly ascending");
        if (state == KEYRING_GEN_ACTIVE && number != m->active)
                return fail(error, p->line_no, "active generation differs from the \"active\" line");
        if (state != KEYRING_GEN_ACTIVE && number == m->active)
                return fail(error, p->line_no, "the generation named by \"active\" is not listed as active");
        if (state != KEYRING_GEN_PENDING && m->pending != 0 && number == m->pending)
                return fail(error, p->line_no, "the generation named by \"pending\" is not listed as pending");
        if (state == KEYRING_GEN_PENDING && m->pending == 0)
                return fail(error, p->line_no, "pending generation listed but \"pending\" is 0");

        r = decode_key(sp2 + 1, n - (size_t) (sp2 + 1 - v), &key);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(error, p->line_no, "generation key must be 64 lowercase hex digits (32 bytes)");
        r = add_generation_take(m, number, state, key);
        if (r < 0)
                return r;
        TAKE_PTR(key);
        return 0;
}

int keyring_manifest_parse(const char *text, size_t size, KeyringManifest **ret, KeyringManifestError *error) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        Parser p = { .text = text, .size = size };
        char group[KEYRING_GROUP_NAME_MAX + 1];
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        uint32_t gid, v32;
        CryptAlg alg;
        const char *v;
        size_t n;
        int r;

        if (size > KEYRING_MANIFEST_MAX) {
                (void) fail(error, 0, "manifest too large");
                return -E2BIG;
        }

        r = next_line(&p, error);
        if (r < 0)
                return r;
        if (p.len != strlen(KEYRING_MANIFEST_MAGIC) || memcmp(p.line, KEYRING_MANIFEST_MAGIC, p.len) != 0)
                return fail(error, p.line_no, "not a dkm keyring manifest version 1");

        r = expect(&p, "group", &v, &n, "expected \"group NAME\"", error);
        if (r < 0)
                return r;
        if (n > KEYRING_GROUP_NAME_MAX)
                return fail(error, p.line_no, "invalid group name");
        memcpy(group, v, n);
        group[n] = 0;
        if (!keyring_group_name_is_valid(group))
                return fail(error, p.line_no, "invalid group name");

        r = expect(&p, "id", &v, &n, "expected \"id GROUP-ID\"", error);
        if (r < 0)
                return r;
        if (keyring_group_id_from_hex(v, n, id) < 0)
                return fail(error, p.line_no, "group id must be 32 lowercase hex digits");

        r = expect_u32(&p, "gid", &gid, "expected \"gid GID\"", error);
        if (r < 0)
                return r;
        if (gid == UINT32_MAX)
                return fail(error, p.line_no, "invalid gid");

        r = expect(&p, "algorithm", &v, &n, "expected \"algorithm ALG\"", error);
        if (r < 0)
                return r;
        {
                char name[32];
                if (n >= sizeof(name))
                        return fail(error, p.line_no, "unknown algorithm");
                memcpy(name, v, n);
                name[n] = 0;
                if (crypt_alg_from_string(name, &alg) < 0)
                        return fail(error, p.line_no, "unknown algorithm");
        }

        r = keyring_manifest_new(group, id, (gid_t) gid, alg, &m);
        if (r < 0)
                return r;

        for (;;) {
                r = next_line(&p, error);
                if (r < 0)
                        return r;
                if (!line_is(&p, "member", &v, &n))
                        break;
                if (keyring_parse_u32(v, n, &v32) < 0 || v32 == UINT32_MAX)
                        return fail(error, p.line_no, "member must be a decimal uid");
                if (v32 == 0)
                        return fail(error, p.line_no, "root (uid 0) cannot be a member");
                r = keyring_manifest_add_member(m, (uid_t) v32);
                if (r == -E2BIG)
                        return fail(error, p.line_no, "too many members");
                if (r < 0)
                        return fail(error, p.line_no, "member uids must be strictly ascending");
        }

        if (!line_is(&p, "active", &v, &n))
                return fail(error, p.line_no, "expected \"member UID\" or \"active N\"");
        if (keyring_parse_u32(v, n, &m->active) < 0 || m->active == 0)
                return fail(error, p.line_no, "active generation must be a positive decimal number");
        r = expect_u32(&p, "pending", &m->pending, "expected \"pending N\"", error);
        if (r < 0)
                return r;
        if (m->pending == m->active)
                return fail(error, p.line_no, "the pending generation is the active one");

        for (;;) {
                r = next_line(&p, error);
                if (r < 0)
                        return r;
                if (p.len == 3 && memcmp(p.line, "end", 3) == 0)
                        break;
                if (!line_is(&p, "generation", &v, &n))
                        return fail(error, p.line_no, "expected \"generation N STATE KEY\" or \"end\"");
                r = parse_generation(&p, m, v, n, error);
                if (r < 0)
                        return r;
        }
        if (p.pos != p.size)
                return fail(error, p.line_no + 1, "data after \"end\"");

        r = keyring_manifest_validate(m, error);
        if (r < 0) {
                if (error)
                        error->line = p.line_no;
                return r;
        }
        *ret = TAKE_PTR(m);
        return 0;
}

/* Key bytes become hex without a table lookup indexed by secret data. */
static uint8_t hex_digit_ct(unsigned n) {
        return (uint8_t) (n + '0' + ((unsigned) ((9 - (int) n) >> 8) & ('a' - '0' - 10)));
}

int keyring_manifest_format(const KeyringManifest *m, Secret **ret) {
        _cleanup_secret_ Secret *buf = NULL;
        char idhex[KEYRING_GROUP_ID_HEX + 1];
        size_t pos = 0;
        int r;

        r = keyring_manifest_validate(m, NULL);
        if (r < 0)
                return -EINVAL;
        r = secret_new(KEYRING_MANIFEST_MAX + 1, &buf);
        if (r < 0)
                return r;

#define APPEND(...)                                                                                                    \
        do {                                                                                                           \
                int _n = snprintf((char *) buf->data + pos, buf->size - pos, __VA_ARGS__);                             \
                if (_n < 0 || (size_t) _n >= buf->size - pos)                                                          \
                        return -E2BIG;                                                                                 \
                pos += (size_t) _n;                                                                                    \
        } while (0)

        keyring_group_id_to_hex(m->group_id, idhex);
        APPEND("%s\ngroup %s\nid %s\ngid %u\nalgorithm %s\n", KEYRING_MANIFEST_MAGIC, m->group, idhex,
               (unsigned) m->gid, crypt_alg_to_string(m->alg));
        for (size_t i = 0; i < m->n_members; i++)
                APPEND("member %u\n", (unsigned) m->members[i]);
        APPEND("active %u\npending %u\n", (unsigned) m->active, (unsigned) m->pending);
        for (size_t i = 0; i < m->n_generations; i++) {
                const KeyringManifestGeneration *g = &m->generations[i];

                APPEND("generation %u %s ", (unsigned) g->number, keyring_gen_state_to_string(g->state));
                if (buf->size - pos < 2 * KEYRING_KEY_BYTES + 2)
                        return -E2BIG;
                for (size_t j = 0; j < KEYRING_KEY_BYTES; j++) {
                        buf->data[pos++] = hex_digit_ct(g->key->data[j] >> 4);
                        buf->data[pos++] = hex_digit_ct(g->key->data[j] & 15);
                }
                buf->data[pos++] = '\n';
        }
        APPEND("end\n");
#undef APPEND

        if (pos > KEYRING_MANIFEST_MAX)
                return -E2BIG;
        return secret_new_copy(buf->data, pos, ret);
}
