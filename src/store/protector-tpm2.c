/* SPDX-License-Identifier: MIT */
/* The "tpm2" protector: the host's TPM seals the protector key, optionally to sha256 PCR values.
 * The only file that talks to a TPM (tpm2-tss: ESYS over the TCTI that DKM_TPM2_TCTI names). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "protector.h"

/* The kernel's resource manager: it also flushes what a crashed process left loaded. */
#define TCTI_DEFAULT "device:/dev/tpmrm0"
#define PCR_LIST_MAX sizeof("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23")

enum { FIELD_PCRS, FIELD_PUBLIC, FIELD_PRIVATE };
static const char *const tpm2_fields[] = { "pcrs", "tpm2-public", "tpm2-private", NULL };

/* "7,11": ascending, so a file has one spelling (format(parse(x)) == x). */
static void pcrs_format(uint32_t mask, char buf[static PCR_LIST_MAX]) {
        size_t n = 0;

        buf[0] = 0;
        for (unsigned i = 0; i < PROTECTOR_TPM2_PCRS; i++)
                if (mask & (UINT32_C(1) << i))
                        n += (size_t) snprintf(buf + n, PCR_LIST_MAX - n, "%s%u", n ? "," : "", i);
}

static int pcrs_parse(const char *value, uint32_t *ret) {
        uint32_t mask = 0;
        int last = -1;

        if (!value[0]) {
                *ret = 0;
                return 0;
        }
        for (const char *p = value;;) {
                const char *comma = strchr(p, ',');
                size_t l = comma ? (size_t) (comma - p) : strlen(p);
                char num[4];
                uint64_t u;

                if (l == 0 || l >= sizeof(num))
                        return -EBADMSG;
                memcpy(num, p, l);
                num[l] = 0;
                if (kv_parse_u64(num, PROTECTOR_TPM2_PCRS - 1, &u) < 0 || (int) u <= last)
                        return -EBADMSG;
                mask |= UINT32_C(1) << u;
                last = (int) u;
                if (!comma)
                        break;
                p = comma + 1;
        }
        *ret = mask;
        return 0;
}

/* Lowercase hex of 1..max bytes into buf. */
static int blob_parse(const char *value, uint8_t *buf, size_t max, uint16_t *ret_size) {
        size_t l = strlen(value);

        if (l == 0 || l % 2 != 0 || l / 2 > max)
                return -EBADMSG;
        if (kv_parse_hex(value, buf, l / 2) < 0)
                return -EBADMSG;
        *ret_size = (uint16_t) (l / 2);
        return 0;
}

/* The marshalled TPM2B_PUBLIC of a sealed-data object, and nothing after it. */
static int public_unmarshal(const uint8_t *buf, size_t size, TPM2B_PUBLIC *ret) {
        TPM2B_PUBLIC pub = {};
        size_t off = 0;

        if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, size, &off, &pub) != TSS2_RC_SUCCESS || off != size ||
            pub.publicArea.type != TPM2_ALG_KEYEDHASH || pub.publicArea.nameAlg != TPM2_ALG_SHA256)
                return -EBADMSG;
        *ret = pub;
        return 0;
}

static int private_unmarshal(const uint8_t *buf, size_t size, TPM2B_PRIVATE *ret) {
        TPM2B_PRIVATE priv = {};
        size_t off = 0;

        if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(buf, size, &off, &priv) != TSS2_RC_SUCCESS || off != size ||
            priv.size == 0)
                return -EBADMSG;
        *ret = priv;
        return 0;
}

static int tpm2_parse_field(Protector *p, size_t index, const char *value) {
        TPM2B_PUBLIC pub;
        TPM2B_PRIVATE priv;

        switch (index) {
        case FIELD_PCRS:
                return pcrs_parse(value, &p->u.tpm2.pcr_mask);
        case FIELD_PUBLIC:
                if (blob_parse(value, p->u.tpm2.pub, sizeof(p->u.tpm2.pub), &p->u.tpm2.pub_size) < 0)
                        return -EBADMSG;
                /* Checked here, not only at unseal: a damaged file is listed as "invalid". */
                return public_unmarshal(p->u.tpm2.pub, p->u.tpm2.pub_size, &pub);
        case FIELD_PRIVATE:
                if (blob_parse(value, p->u.tpm2.priv, sizeof(p->u.tpm2.priv), &p->u.tpm2.priv_size) < 0)
                        return -EBADMSG;
                return private_unmarshal(p->u.tpm2.priv, p->u.tpm2.priv_size, &priv);
        }
        return -EBADMSG;
}

static void tpm2_format_fields(const Protector *p, KvBuf *b) {
        char pcrs[PCR_LIST_MAX];

        pcrs_format(p->u.tpm2.pcr_mask, pcrs);
        kvbuf_printf(b, "pcrs=%s\ntpm2-public=", pcrs);
        kvbuf_put_hex(b, p->u.tpm2.pub, p->u.tpm2.pub_size);
        kvbuf_printf(b, "\ntpm2-private=");
        kvbuf_put_hex(b, p->u.tpm2.priv, p->u.tpm2.priv_size);
        kvbuf_printf(b, "\n");
}

/* One connection to the TPM and what this process loaded into it. */
typedef struct Tpm {
        const char *tcti_conf;
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
        ESYS_TR primary, object, session;
} Tpm;

#define TPM_INIT ((Tpm) { .primary = ESYS_TR_NONE, .object = ESYS_TR_NONE, .session = ESYS_TR_NONE })

static void tpm_flush(Tpm *t, ESYS_TR *h) {
        if (*h != ESYS_TR_NONE)
                (void) Esys_FlushContext(t->esys, *h);
        *h = ESYS_TR_NONE;
}

static void tpm_close(Tpm *t) {
        /* There may be no resource manager between us and the TPM (/dev/tpm0, swtpm): whatever
         * is left loaded stays until the TPM restarts, and a few leftovers fill its object and
         * session slots (0x902) for everyone. So every path ends here, success or not. */
        if (t->esys) {
                tpm_flush(t, &t->session);
                tpm_flush(t, &t->object);
                tpm_flush(t, &t->primary);
                Esys_Finalize(&t->esys);
        }
        /* A new connection each time: the next unlock sees the TPM as it is then. */
        if (t->tcti)
                Tss2_TctiLdr_Finalize(&t->tcti);
        *t = TPM_INIT;
}

/* The TPM's own response code with the handle/session/parameter number stripped; 0 for a code
 * from a layer of the TSS itself (TCTI, marshalling, ESYS). */
static TSS2_RC tpm_rc_base(TSS2_RC rc) {
        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

        if (layer != TSS2_TPM_RC_LAYER && layer != TSS2_RESMGR_TPM_RC_LAYER)
                return 0;
        rc &= 0xfff;
        return rc & TPM2_RC_FMT1 ? rc & (TPM2_RC_FMT1 | 0x3f) : rc;
}

/* The connection failed or broke (refused, closed, device gone), as opposed to a TPM's answer. */
static bool tpm_rc_unreachable(TSS2_RC rc) {
        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK, base = rc & ~TSS2_RC_LAYER_MASK;

        if (layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER)
                return false;
        return layer == TSS2_TCTI_RC_LAYER || base == TSS2_BASE_RC_IO_ERROR || base == TSS2_BASE_RC_NO_CONNECTION;
}

/* A failed TPM call: -EHOSTDOWN when the TPM went away, else r with "what: decoded code". */
static int tpm_fail(Store *s, const Tpm *t, TSS2_RC rc, int r, const char *what) {
        if (tpm_rc_unreachable(rc))
                return store_error(s, -EHOSTDOWN, NULL, "the TPM is unreachable (TCTI '%s'): %s: %s", t->tcti_conf,
                                   what, Tss2_RC_Decode(rc));
        return store_error(s, r, NULL, "%s: %s (0x%x)", what, Tss2_RC_Decode(rc), (unsigned) rc);
}

/* The storage primary key of the owner hierarchy, from the TCG's SRK template (ECC P-256, else
 * RSA 2048) with empty auth. CreatePrimary derives it from the TPM's storage seed, so the same
 * template gives the same key every time until the TPM is cleared: no persistent handle to
 * provision, none to collide with another user's. */
static int tpm_primary(Store *s, Tpm *t) {
        static const TPMA_OBJECT attrs = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                         TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                         TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
        static const TPMT_SYM_DEF_OBJECT aes128cfb = {
                .algorithm = TPM2_ALG_AES,
                .keyBits.aes = 128,
                .mode.aes = TPM2_ALG_CFB,
        };
        const TPM2B_PUBLIC templates[] = {
                { .publicArea = {
                          .type = TPM2_ALG_ECC,
                          .nameAlg = TPM2_ALG_SHA256,
                          .objectAttributes = attrs,
                          .parameters.eccDetail = {
                                  .symmetric = aes128cfb,
                                  .scheme.scheme = TPM2_ALG_NULL,
                                  .curveID = TPM2_ECC_NIST_P256,
                                  .kdf.scheme = TPM2_ALG_NULL,
                          },
                  } },
                { .publicArea = {
                          .type = TPM2_ALG_RSA,
                          .nameAlg = TPM2_ALG_SHA256,
                          .objectAttributes = attrs,
                          .parameters.rsaDetail = {
                                  .symmetric = aes128cfb,
                                  .scheme.scheme = TPM2_ALG_NULL,
                                  .keyBits = 2048,
                          },
                  } },
        };
        const TPM2B_SENSITIVE_CREATE sensitive = {};
        const TPM2B_DATA outside = {};
        const TPML_PCR_SELECTION creation_pcrs = {};
        TSS2_RC rc = TSS2_RC_SUCCESS;

        for (size_t i = 0; i < ELEMENTSOF(templates); i++) {
                rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                        &sensitive, &templates[i], &outside, &creation_pcrs, &t->primary, NULL, NULL,
                                        NULL, NULL);
                if (rc == TSS2_RC_SUCCESS)
                        return 0;
                /* Only a TPM without ECC gets the RSA key: the choice must be the same at every
                 * unseal, and an RSA primary costs seconds on a hardware TPM. */
                if (tpm_rc_unreachable(rc) || tpm_rc_base(rc) == TPM2_RC_BAD_AUTH ||
                    tpm_rc_base(rc) == TPM2_RC_HIERARCHY || tpm_rc_base(rc) == TPM2_RC_AUTH_FAIL)
                        break;
        }
        if (tpm_rc_base(rc) == TPM2_RC_BAD_AUTH || tpm_rc_base(rc) == TPM2_RC_AUTH_FAIL)
                return tpm_fail(s, t, rc, -EIO,
                                "cannot create the TPM's storage primary key: the owner hierarchy has a password (dkm needs it empty)");
        return tpm_fail(s, t, rc, -EIO, "cannot create the TPM's storage primary key");
}

/* Connect and make the primary key. */
static int tpm_open(Store *s, Tpm *t) {
        const char *conf = secure_getenv("DKM_TPM2_TCTI");
        TSS2_RC rc;

        *t = TPM_INIT;
        t->tcti_conf = conf && conf[0] ? conf : TCTI_DEFAULT;
        rc = Tss2_TctiLdr_Initialize(t->tcti_conf, &t->tcti);
        if (rc != TSS2_RC_SUCCESS) {
                t->tcti = NULL;
                return store_error(s, -EHOSTDOWN, NULL, "the TPM is unreachable (TCTI '%s', set DKM_TPM2_TCTI): %s",
                                   t->tcti_conf, Tss2_RC_Decode(rc));
        }
        rc = Esys_Initialize(&t->esys, t->tcti, NULL);
        if (rc != TSS2_RC_SUCCESS) {
                t->esys = NULL;
                return store_error(s, -EHOSTDOWN, NULL, "the TPM is unreachable (TCTI '%s'): %s", t->tcti_conf,
                                   Tss2_RC_Decode(rc));
        }
        return tpm_primary(s, t);
}

/* A session salted with the primary key, parameters encrypted with AES-128-CFB: the protector key
 * crosses the bus (or the socket) encrypted under a session key only this process and the TPM
 * holding the storage seed know. attrs: TPMA_SESSION_DECRYPT (command) or _ENCRYPT (response). */
static int tpm_start_session(Store *s, Tpm *t, TPM2_SE type, TPMA_SESSION attrs) {
        static const TPMT_SYM_DEF aes128cfb = {
                .algorithm = TPM2_ALG_AES,
                .keyBits.aes = 128,
                .mode.aes = TPM2_ALG_CFB,
        };
        TSS2_RC rc;

        rc = Esys_StartAuthSession(t->esys, type == TPM2_SE_TRIAL ? ESYS_TR_NONE : t->primary, ESYS_TR_NONE,
                                   ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, type, &aes128cfb, TPM2_ALG_SHA256,
                                   &t->session);
        if (rc != TSS2_RC_SUCCESS) {
                t->session = ESYS_TR_NONE;
                return tpm_fail(s, t, rc, -EIO, "cannot start a TPM session");
        }
        /* continueSession: the session stays until tpm_close() flushes it, on every path, rather
         * than vanishing on success only. */
        rc = Esys_TRSess_SetAttributes(t->esys, t->session, TPMA_SESSION_CONTINUESESSION | attrs, 0xff);
        if (rc != TSS2_RC_SUCCESS)
                return tpm_fail(s, t, rc, -EIO, "cannot set the TPM session's attributes");
        return 0;
}

/* PolicyPCR on the session over the sha256 PCRs of mask, at their current values (an empty
 * digest: the TPM reads them itself). */
static int tpm_policy_pcr(Store *s, Tpm *t, uint32_t mask) {
        const TPML_PCR_SELECTION sel = {
                .count = 1,
                .pcrSelections[0] = {
                        .hash = TPM2_ALG_SHA256,
                        .sizeofSelect = 3,
                        .pcrSelect = { mask & 0xff, (mask >> 8) & 0xff, (mask >> 16) & 0xff },
                },
        };
        const TPM2B_DIGEST current = {};
        TSS2_RC rc;

        rc = Esys_PolicyPCR(t->esys, t->session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current, &sel);
        if (rc != TSS2_RC_SUCCESS)
                return tpm_fail(s, t, rc, -EIO, "the TPM refuses a policy on its sha256 PCRs");
        return 0;
}

/* Load p's sealed object under the primary key and unseal it: through a policy session on the
 * PCRs, or with the object's empty auth when it has none. */
static int tpm_unseal_key(Store *s, const Protector *p, Tpm *t, Secret **ret_key) {
        _cleanup_secret_ Secret *key = NULL;
        TPM2B_SENSITIVE_DATA *out = NULL;
        TPM2B_PUBLIC pub;
        TPM2B_PRIVATE priv;
        char pcrs[PCR_LIST_MAX];
        TSS2_RC rc;
        int r;

        if (public_unmarshal(p->u.tpm2.pub, p->u.tpm2.pub_size, &pub) < 0 ||
            private_unmarshal(p->u.tpm2.priv, p->u.tpm2.priv_size, &priv) < 0)
                return store_error(s, -EBADMSG, NULL, "the sealed object in the protector file is damaged");
        rc = Esys_Load(t->esys, t->primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &t->object);
        if (rc != TSS2_RC_SUCCESS) {
                t->object = ESYS_TR_NONE;
                /* Its outer integrity is keyed by the primary key, so by this TPM's storage seed. */
                return tpm_fail(s, t, rc, -ENOKEY,
                                "the TPM cannot load the sealed key (made by another TPM, or the TPM was cleared: withdrawn)");
        }
        if (p->u.tpm2.pcr_mask) {
                r = tpm_start_session(s, t, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT);
                if (r >= 0)
                        r = tpm_policy_pcr(s, t, p->u.tpm2.pcr_mask);
        } else
                r = tpm_start_session(s, t, TPM2_SE_HMAC, TPMA_SESSION_ENCRYPT);
        if (r < 0)
                return r;
        rc = Esys_Unseal(t->esys, t->object, t->session, ESYS_TR_NONE, ESYS_TR_NONE, &out);
        if (rc != TSS2_RC_SUCCESS) {
                pcrs_format(p->u.tpm2.pcr_mask, pcrs);
                if (tpm_rc_base(rc) == TPM2_RC_POLICY_FAIL || tpm_rc_base(rc) == TPM2_RC_PCR_CHANGED)
                        return store_error(s, -EKEYREJECTED, NULL,
                                           "the TPM's PCRs %s no longer match the protector's policy (PCR mismatch): %s",
                                           pcrs, Tss2_RC_Decode(rc));
                return tpm_fail(s, t, rc, -ENOKEY, "the TPM refuses to unseal the protector key");
        }
        if (out->size == CRYPT_KEY_BYTES)
                r = secret_new_copy(out->buffer, out->size, &key);
        else
                r = store_error(s, -ENOKEY, NULL, "the TPM unsealed %u bytes, not %u", (unsigned) out->size,
                                CRYPT_KEY_BYTES);
        secret_wipe(out, sizeof(*out));
        Esys_Free(out);
        if (r < 0)
                return r;
        *ret_key = TAKE_PTR(key);
        return 0;
}

/* The sealed-data object for key: sensitiveDataOrigin clear (the data is ours), fixedTPM and
 * fixedParent (it never leaves this TPM's storage hierarchy), noDA (its empty auth is no secret to
 * guess). With PCRs, userWithAuth is clear: only the policy session unseals it, never the empty
 * password. */
static int tpm_seal_key(Store *s, Protector *p, Tpm *t, const Secret *key) {
        TPM2B_PUBLIC tmpl = {
                .publicArea = {
                        .type = TPM2_ALG_KEYEDHASH,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA |
                                            (p->u.tpm2.pcr_mask ? 0 : TPMA_OBJECT_USERWITHAUTH),
                        .parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
                },
        };
        TPM2B_SENSITIVE_CREATE sensitive = {};
        const TPM2B_DATA outside = {};
        const TPML_PCR_SELECTION creation_pcrs = {};
        TPM2B_PUBLIC *out_pub = NULL;
        TPM2B_PRIVATE *out_priv = NULL;
        TPM2B_DIGEST *policy = NULL;
        size_t pub_size = 0, priv_size = 0;
        TSS2_RC rc;
        int r;

        if (p->u.tpm2.pcr_mask) {
                /* A trial session computes the digest the TPM will later demand, from the values
                 * the PCRs hold now. */
                r = tpm_start_session(s, t, TPM2_SE_TRIAL, 0);
                if (r >= 0)
                        r = tpm_policy_pcr(s, t, p->u.tpm2.pcr_mask);
                if (r < 0)
                        return r;
                rc = Esys_PolicyGetDigest(t->esys, t->session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &policy);
                tpm_flush(t, &t->session);
                if (rc != TSS2_RC_SUCCESS)
                        return tpm_fail(s, t, rc, -EIO, "cannot compute the PCR policy");
                tmpl.publicArea.authPolicy = *policy;
                Esys_Free(policy);
        }

        r = tpm_start_session(s, t, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT);
        if (r < 0)
                return r;
        sensitive.sensitive.data.size = CRYPT_KEY_BYTES;
        memcpy(sensitive.sensitive.data.buffer, key->data, CRYPT_KEY_BYTES);
        rc = Esys_Create(t->esys, t->primary, t->session, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &tmpl, &outside,
                         &creation_pcrs, &out_priv, &out_pub, NULL, NULL, NULL);
        secret_wipe(&sensitive, sizeof(sensitive));
        tpm_flush(t, &t->session);
        if (rc != TSS2_RC_SUCCESS)
                return tpm_fail(s, t, rc, -EIO, "the TPM cannot seal the protector key");

        if (Tss2_MU_TPM2B_PUBLIC_Marshal(out_pub, p->u.tpm2.pub, sizeof(p->u.tpm2.pub), &pub_size) != TSS2_RC_SUCCESS ||
            Tss2_MU_TPM2B_PRIVATE_Marshal(out_priv, p->u.tpm2.priv, sizeof(p->u.tpm2.priv), &priv_size) !=
                    TSS2_RC_SUCCESS)
                r = store_error(s, -EIO, NULL, "the TPM's sealed object does not fit the protector file");
        Esys_Free(out_pub);
        Esys_Free(out_priv);
        if (r < 0)
                return r;
        p->u.tpm2.pub_size = (uint16_t) pub_size;
        p->u.tpm2.priv_size = (uint16_t) priv_size;
        return 0;
}

static int tpm2_seal(Store *s, Protector *p, const Secret *root, const Secret *credential) {
        _cleanup_secret_ Secret *key = NULL, *check = NULL;
        Tpm t;
        int r;

        r = tpm_open(s, &t);
        if (r >= 0)
                r = crypt_keygen(&key);
        if (r >= 0)
                r = tpm_seal_key(s, p, &t, key);
        /* Read it back, through the very policy, before trusting it with the root key. */
        if (r >= 0)
                r = tpm_unseal_key(s, p, &t, &check);
        if (r >= 0 && secret_equal(check, key) != 1)
                r = store_error(s, -EIO, NULL, "the TPM does not give back what it sealed");
        tpm_close(&t);
        if (r >= 0)
                r = protector_wrap_root(s, p, key, root);
        return r;
}

static int tpm2_unseal(Store *s, const Protector *p, const Secret *credential, Secret **ret_root) {
        _cleanup_secret_ Secret *key = NULL;
        Tpm t;
        int r;

        r = tpm_open(s, &t);
        if (r >= 0)
                r = tpm_unseal_key(s, p, &t, &key);
        tpm_close(&t);
        if (r < 0)
                return r;
        r = protector_unwrap_root(s, p, key, ret_root);
        if (r == -ENOKEY)
                return store_error(s, r, NULL, "the TPM's key does not unwrap the root key (protector file damaged)");
        return r;
}

/* uses_device: a TPM round trip (and an ECC key derivation) costs milliseconds to seconds, so key
 * files go first; needs_credential false: the policy is the PCRs, there is no PIN to ask for. */
const ProtectorOps protector_tpm2_ops = {
        .type = "tpm2",
        .needs_credential = false,
        .uses_device = true,
        .fields = tpm2_fields,
        .parse_field = tpm2_parse_field,
        .format_fields = tpm2_format_fields,
        .seal = tpm2_seal,
        .unseal = tpm2_unseal,
};
