/* SPDX-License-Identifier: MIT */
/* fuzz-bus: one method call of dkmd's API built from fuzz input: the method, the object path and
 * the arguments, mostly of the right types with fuzzed values, sometimes of the wrong ones. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "bus-manager.h"
#include "fuzz-bus.h"
#include "macro.h"

#define STRING_MAX        512U
#define HUGE_STRING_BYTES (64U << 10)

/* sd-bus refuses to send a string that is not UTF-8 (or an object path that is not one), and
 * dkmd can never receive one: each invalid byte becomes '?', so the rest of the value still
 * gets through. */
static void make_utf8(char *s) {
        unsigned char *p = (unsigned char *) s;

        while (*p) {
                uint32_t cp, min;
                size_t len;
                bool ok = true;

                if (*p < 0x80) {
                        p++;
                        continue;
                }
                if (*p >= 0xc2 && *p <= 0xdf)
                        len = 2, cp = *p & 0x1fU, min = 0x80;
                else if ((*p & 0xf0) == 0xe0)
                        len = 3, cp = *p & 0x0fU, min = 0x800;
                else if (*p >= 0xf0 && *p <= 0xf4)
                        len = 4, cp = *p & 0x07U, min = 0x10000;
                else
                        len = 1, cp = 0, min = 1, ok = false;
                for (size_t i = 1; ok && i < len; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                ok = false;
                        else
                                cp = cp << 6 | (p[i] & 0x3fU);
                }
                if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)))
                        ok = false;
                if (!ok) {
                        *p++ = '?';
                        continue;
                }
                p += len;
        }
}

/* A string value: mostly short, now and then huge (the input's string repeated). */
static char *arg_string(FuzzInput *in) {
        uint8_t how = fuzz_u8(in);
        char *s = fuzz_string(in, STRING_MAX);

        if ((how & 0x1f) == 0x1f) {
                size_t n = strlen(s), total = 0;
                char *big = malloc(HUGE_STRING_BYTES + 1);

                FUZZ_ASSERT(big);
                while (total + MAX(n, (size_t) 1) <= HUGE_STRING_BYTES) {
                        memcpy(big + total, n ? s : "a", MAX(n, (size_t) 1));
                        total += MAX(n, (size_t) 1);
                }
                big[total] = 0;
                free(s);
                s = big;
        }
        make_utf8(s);
        return s;
}

/* A group name: the seeded ones, a valid-looking one, or anything. */
static char *arg_group_name(FuzzInput *in) {
        switch (fuzz_u8(in) % 8) {
        case 0:
        case 1:
                return strdup(FUZZ_BUS_GROUP_NAME);
        case 2:
                return strdup(FUZZ_BUS_SECOND_GROUP_NAME);
        case 3:
                return strdup("from-dropin");
        default:
                return arg_string(in);
        }
}

static uint32_t arg_generation(FuzzInput *in) {
        uint8_t b = fuzz_u8(in);

        return b < 0xf0 ? b % 8 : fuzz_u32(in);
}

/* A usable gid mostly; 0, -1, an unknown one or anything now and then. */
static uint32_t arg_gid(FuzzInput *in) {
        uint8_t b = fuzz_u8(in);

        if (b < 0xc0)
                return (uint32_t) fuzz_bus_good_gids[b % fuzz_bus_n_good_gids];
        if (b < 0xe0)
                return b % 3 == 0 ? 0 : b % 3 == 1 ? UINT32_MAX : 65534;
        return fuzz_u32(in);
}

static uint64_t arg_usec(FuzzInput *in) {
        uint8_t b = fuzz_u8(in);

        switch (b % 4) {
        case 0:
                return (uint64_t) (b >> 2) * 1000000U; /* whole seconds, around the 1 s minimum */
        case 1:
                return (uint64_t) fuzz_u32(in) * 1000000U;
        default:
                return fuzz_u64(in);
        }
}

static const char *const option_keys[] = {
        "Algorithm",      "RolloverPeriodUSec", "PropagationDelayUSec", "HotWindow",           "AllowHumanMembers",
        "ApprovalGroups", "MaxGrantUSec",       "RequestTimeoutUSec",   "RetireNeedsApproval",
};

static int append_any_variant(sd_bus_message *m, FuzzInput *in, unsigned depth);

/* A value for one of the a{sv} options: usually of the type the option wants, sometimes not. */
static int append_option_value(sd_bus_message *m, const char *key, FuzzInput *in) {
        uint8_t b = fuzz_u8(in);
        int r;

        if (b >= 0xe0)
                return append_any_variant(m, in, 0);
        if (strcmp(key, "Algorithm") == 0) {
                static const char *const algs[] = { "xchacha20-poly1305", "aes256-gcm" };
                _cleanup_free_ char *s = b % 4 < 2 ? strdup(algs[b % 2]) : arg_string(in);

                return sd_bus_message_append(m, "v", "s", s);
        }
        if (strcmp(key, "HotWindow") == 0)
                return sd_bus_message_append(m, "v", "u", b % 2 ? (uint32_t) (b % 70) : fuzz_u32(in));
        if (strcmp(key, "AllowHumanMembers") == 0 || strcmp(key, "RetireNeedsApproval") == 0)
                return sd_bus_message_append(m, "v", "b", (int) (b & 1));
        if (strcmp(key, "ApprovalGroups") == 0) {
                unsigned n = b % 11;

                r = sd_bus_message_open_container(m, 'v', "as");
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(m, 'a', "s");
                if (r < 0)
                        return r;
                for (unsigned i = 0; i < n; i++) {
                        uint8_t c = fuzz_u8(in);
                        _cleanup_free_ char *s = c % 4 < 3 ? strdup(fuzz_bus_good_group_names[c % fuzz_bus_n_good_gids])
                                                           : arg_string(in);

                        r = sd_bus_message_append(m, "s", s);
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
        /* The USec options. */
        return sd_bus_message_append(m, "v", "t", arg_usec(in));
}

/* Any variant: a basic type, an array, a struct, or (bounded) a nested a{sv}. */
static int append_any_variant(sd_bus_message *m, FuzzInput *in, unsigned depth) {
        uint8_t b = fuzz_u8(in);
        int r;

        switch (b % 10) {
        case 0: {
                _cleanup_free_ char *s = arg_string(in);
                return sd_bus_message_append(m, "v", "s", s);
        }
        case 1:
                return sd_bus_message_append(m, "v", "t", fuzz_u64(in));
        case 2:
                return sd_bus_message_append(m, "v", "u", fuzz_u32(in));
        case 3:
                return sd_bus_message_append(m, "v", "b", (int) (fuzz_u8(in) & 1));
        case 4:
                return sd_bus_message_append(m, "v", "i", (int32_t) fuzz_u32(in));
        case 5:
                return sd_bus_message_append(m, "v", "d", (double) fuzz_u64(in));
        case 6: {
                uint8_t bytes[32];
                size_t n = fuzz_u8(in) % sizeof(bytes);

                for (size_t i = 0; i < n; i++)
                        bytes[i] = fuzz_u8(in);
                r = sd_bus_message_open_container(m, 'v', "ay");
                if (r < 0)
                        return r;
                r = sd_bus_message_append_array(m, 'y', bytes, n);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
        case 7: {
                _cleanup_free_ char *s = arg_string(in);
                return sd_bus_message_append(m, "v", "(su)", s, fuzz_u32(in));
        }
        case 8:
                return sd_bus_message_append(m, "v", "as", 2, "root", "nogroup");
        default:
                if (depth > 2)
                        return sd_bus_message_append(m, "v", "a{sv}", 0);
                r = sd_bus_message_open_container(m, 'v', "a{sv}");
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(m, 'a', "{sv}");
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                r = sd_bus_message_append(m, "s", option_keys[fuzz_u8(in) % ELEMENTSOF(option_keys)]);
                if (r < 0)
                        return r;
                r = append_any_variant(m, in, depth + 1);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
}

/* The a{sv} of CreateGroup and SetPolicy: known keys (and random ones) with fuzzed values. */
static int append_options(sd_bus_message *m, FuzzInput *in) {
        unsigned n = fuzz_u8(in) % 12;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (unsigned i = 0; i < n; i++) {
                uint8_t k = fuzz_u8(in);
                _cleanup_free_ char *key = k < 0xf0 ? strdup(option_keys[k % ELEMENTSOF(option_keys)]) : arg_string(in);

                FUZZ_ASSERT(key);
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                r = sd_bus_message_append(m, "s", key);
                if (r < 0)
                        return r;
                r = append_option_value(m, key, in);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* ---- AddProtector, RemoveProtector (issue 8) ---- */

/* A protector name: the world's own file protector ("local", from store_init()), valid new ones,
 * or anything (the bus checks [a-z0-9][a-z0-9_.-]{0,63}). */
static char *arg_protector_name(FuzzInput *in) {
        switch (fuzz_u8(in) % 8) {
        case 0:
        case 1:
                return strdup("local");
        case 2:
                return strdup("hsm-1");
        case 3:
                return strdup("tpm");
        default:
                return arg_string(in);
        }
}

/* AddProtector's type: the three the bus takes, one it refuses (passphrases are dkm-store's), or
 * anything. */
static char *arg_protector_type(FuzzInput *in) {
        static const char *const types[] = { "file", "pkcs11", "tpm2", "passphrase" };
        uint8_t b = fuzz_u8(in);

        return b < 0xf0 ? strdup(types[b % ELEMENTSOF(types)]) : arg_string(in);
}

/* A PKCS#11 URI (RFC 7512) as the Uri option takes it: token and object labels (fixed or from the
 * input) and now and then a query or attribute dkm reads or refuses; or any string. Whatever
 * module-path or module-name it names, fuzz-bus.c never lets p11-kit load a module (see there). */
static char *arg_pkcs11_uri(FuzzInput *in) {
        static const char *const tails[] = {
                "",
                "",
                "?module-name=softhsm2",
                "?module-path=/usr/lib/softhsm/libsofthsm2.so",
                "?module-path=relative.so",
                ";id=%01%02",
                ";type=secret-key",
                "?pin-value=1234",
        };
        uint8_t b = fuzz_u8(in);
        _cleanup_free_ char *token = NULL, *object = NULL;
        char *uri = NULL;

        if (b >= 0xe0)
                return arg_string(in);
        token = b & 1 ? strdup("customer") : fuzz_string(in, 64);
        object = b & 2 ? strdup("dkm-root") : fuzz_string(in, 64);
        FUZZ_ASSERT(token && object);
        FUZZ_ASSERT(asprintf(&uri, "pkcs11:token=%s;object=%s%s", token, object,
                             tails[(b >> 2) % ELEMENTSOF(tails)]) >= 0);
        make_utf8(uri);
        return uri;
}

/* The Pcrs option's au: mostly PCRs 0..23, sometimes out of range, repeated, or too many. */
static int append_pcrs(sd_bus_message *m, FuzzInput *in) {
        unsigned n = fuzz_u8(in) % 27;
        int r;

        r = sd_bus_message_open_container(m, 'v', "au");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "u");
        if (r < 0)
                return r;
        for (unsigned i = 0; i < n; i++) {
                uint8_t c = fuzz_u8(in);

                r = sd_bus_message_append(m, "u", c < 0xe0 ? (uint32_t) (c % 24) : fuzz_u32(in));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* AddProtector's a{sv}: usually the one option the type wants (Uri for pkcs11, Pcrs for tpm2),
 * sometimes none, both, twice, a policy key, a random key, or a value of another type. */
static int append_protector_options(sd_bus_message *m, const char *type, FuzzInput *in) {
        static const char *const keys[] = { "Uri", "Pcrs" };
        uint8_t b = fuzz_u8(in);
        unsigned n = b < 0xc0 ? 1 : b % 4;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (unsigned i = 0; i < n; i++) {
                uint8_t k = fuzz_u8(in), v;
                _cleanup_free_ char *key = NULL;

                if (k < 0x80)
                        key = strdup(strcmp(type, "tpm2") == 0 ? "Pcrs" : "Uri");
                else if (k < 0xe0)
                        key = strdup(keys[k % ELEMENTSOF(keys)]);
                else if (k < 0xf0)
                        key = strdup(option_keys[k % ELEMENTSOF(option_keys)]);
                else
                        key = arg_string(in);
                FUZZ_ASSERT(key);
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                r = sd_bus_message_append(m, "s", key);
                if (r < 0)
                        return r;
                v = fuzz_u8(in);
                if (v < 0xe0 && strcmp(key, "Uri") == 0) {
                        _cleanup_free_ char *uri = arg_pkcs11_uri(in);

                        r = sd_bus_message_append(m, "v", "s", uri);
                } else if (v < 0xe0 && strcmp(key, "Pcrs") == 0)
                        r = append_pcrs(m, in);
                else
                        r = append_any_variant(m, in, 0);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* Arguments of a signature the method does not take: random basic values. */
int fuzz_bus_append_wrong(sd_bus_message *m, FuzzInput *in) {
        unsigned n = fuzz_u8(in) % 5;
        int r = 0;

        for (unsigned i = 0; i < n && r >= 0; i++)
                switch (fuzz_u8(in) % 6) {
                case 0: {
                        _cleanup_free_ char *s = arg_string(in);
                        r = sd_bus_message_append(m, "s", s);
                        break;
                }
                case 1:
                        r = sd_bus_message_append(m, "u", fuzz_u32(in));
                        break;
                case 2:
                        r = sd_bus_message_append(m, "t", fuzz_u64(in));
                        break;
                case 3:
                        r = sd_bus_message_append(m, "o", BUS_MANAGER_PATH);
                        break;
                case 4:
                        r = append_any_variant(m, in, 0);
                        break;
                default:
                        r = append_options(m, in);
                }
        return r;
}

static const FuzzBusMethod methods[] = {
        { BUS_MANAGER_INTERFACE, "CreateGroup", "sua{sv}", TARGET_MANAGER },
        { BUS_MANAGER_INTERFACE, "ListGroups", "", TARGET_MANAGER },
        { BUS_MANAGER_INTERFACE, "GetGroup", "s", TARGET_MANAGER },
        { BUS_MANAGER_INTERFACE, "Reload", "", TARGET_MANAGER },
        { BUS_MANAGER_INTERFACE, "RequestAccess", "sst", TARGET_MANAGER },
        { BUS_MANAGER_INTERFACE, "ListRequests", "", TARGET_MANAGER },
        { BUS_MANAGER_INTERFACE, "GetRequest", "t", TARGET_MANAGER },
        { BUS_GROUP_INTERFACE, "Rollover", "", TARGET_GROUP },
        { BUS_GROUP_INTERFACE, "Archive", "u", TARGET_GROUP },
        { BUS_GROUP_INTERFACE, "Retire", "us", TARGET_GROUP },
        { BUS_GROUP_INTERFACE, "SetPolicy", "a{sv}", TARGET_GROUP },
        { BUS_GROUP_INTERFACE, "Load", "", TARGET_GROUP },
        { BUS_REQUEST_INTERFACE, "Approve", "", TARGET_REQUEST },
        { BUS_REQUEST_INTERFACE, "Deny", "s", TARGET_REQUEST },
        { BUS_REQUEST_INTERFACE, "Cancel", "", TARGET_REQUEST },
        { BUS_REQUEST_INTERFACE, "Revoke", "", TARGET_REQUEST },
        { "org.freedesktop.DBus.Properties", "Get", "ss", TARGET_ANY },
        { "org.freedesktop.DBus.Properties", "GetAll", "s", TARGET_ANY },
        { "org.freedesktop.DBus.Properties", "Set", "ssv", TARGET_ANY },
        { "org.freedesktop.DBus.Introspectable", "Introspect", "", TARGET_ANY },
        { "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", "", TARGET_ANY },
        /* Issue 8's, at the end so that the committed seeds keep naming the same methods. */
        { BUS_MANAGER_INTERFACE, "ListProtectors", "", TARGET_MANAGER },
        { BUS_MANAGER_INTERFACE, "CheckProtectors", "", TARGET_MANAGER },
        { BUS_MANAGER_INTERFACE, "AddProtector", "ssa{sv}s", TARGET_MANAGER },
        { BUS_MANAGER_INTERFACE, "RemoveProtector", "ss", TARGET_MANAGER },
        { BUS_MANAGER_INTERFACE, "Purge", "s", TARGET_MANAGER },
};

static const char *const interfaces[] = {
        BUS_MANAGER_INTERFACE,
        BUS_GROUP_INTERFACE,
        BUS_REQUEST_INTERFACE,
        "org.freedesktop.DBus.Properties",
};

static const char *const properties[] = {
        "Version",
        "StoreUnlocked",
        "Name",
        "Gid",
        "Algorithm",
        "ActiveGeneration",
        "PendingGeneration",
        "NextRolloverUSec",
        "RolloverPeriodUSec",
        "PropagationDelayUSec",
        "HotWindow",
        "AllowHumanMembers",
        "Generations",
        "ApprovalGroups",
        "MaxGrantUSec",
        "RequestTimeoutUSec",
        "RetireNeedsApproval",
        "Id",
        "Kind",
        "Group",
        "Generation",
        "Requester",
        "Justification",
        "DurationUSec",
        "CreatedUSec",
        "DeadlineUSec",
        "Approvals",
        "State",
        "GrantedUSec",
        "ExpiresUSec",
        "ClosedUSec",
        "ClosedBy",
        "Reason",
        /* Issue 8's: the manager's store state and policy, a store-wide request's target and spec. */
        "StoreState",
        "StoreStateDetail",
        "NextCheckUSec",
        "PurgeAtUSec",
        "StoreApprovalGroups",
        "PurgeDelayUSec",
        "Target",
        "Spec",
};

/* An object path that sd-bus accepts: [A-Za-z0-9_] elements, from the input. */
static char *random_path(FuzzInput *in) {
        _cleanup_free_ char *s = fuzz_string(in, 300);
        size_t n = strlen(s), k = 0;
        char *p = malloc(n + 2);

        FUZZ_ASSERT(p);
        p[k++] = '/';
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '/' && p[k - 1] != '/')
                        p[k++] = '/';
                else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')
                        p[k++] = (char) c;
        }
        if (k > 1 && p[k - 1] == '/')
                k--;
        p[k] = 0;
        return p;
}

char *fuzz_bus_pick_path(FuzzInput *in, FuzzBusTarget want) {
        uint8_t b = fuzz_u8(in);
        FuzzBusTarget t = b < 0xc0 && want != TARGET_ANY ? want : (FuzzBusTarget) (b % 4);
        char *path = NULL;

        switch (t) {
        case TARGET_MANAGER:
                return strdup(BUS_MANAGER_PATH);
        case TARGET_GROUP: {
                _cleanup_free_ char *name = arg_group_name(in);

                FUZZ_ASSERT(bus_group_path(name, &path) >= 0);
                return path;
        }
        case TARGET_REQUEST: {
                uint8_t c = fuzz_u8(in);

                if (c < 0xf0) {
                        FUZZ_ASSERT(bus_request_path(c % 8, &path) >= 0);
                        return path;
                }
                if (c == 0xff) /* leading zeros name the same request */
                        return strdup(BUS_REQUEST_PATH_PREFIX "/0000000000000000000001");
                FUZZ_ASSERT(bus_request_path(fuzz_u64(in), &path) >= 0);
                return path;
        }
        default:
                return random_path(in);
        }
}

int fuzz_bus_append_args(sd_bus_message *m, const FuzzBusMethod *method, FuzzInput *in) {
        bool add_protector = strcmp(method->member, "AddProtector") == 0;
        char type[16] = ""; /* AddProtector's type, which its options follow */
        int r = 0;

        for (const char *sig = method->signature; *sig && r >= 0; sig++)
                switch (*sig) {
                case 's': {
                        _cleanup_free_ char *s = NULL;

                        /* Which string: a group name, a justification, a property interface... */
                        if (strcmp(method->member, "Get") == 0 || strcmp(method->member, "Set") == 0 ||
                            strcmp(method->member, "GetAll") == 0) {
                                uint8_t b = fuzz_u8(in);

                                if (sig == method->signature)
                                        s = b < 0xe0 ? strdup(interfaces[b % ELEMENTSOF(interfaces)]) : arg_string(in);
                                else
                                        s = b < 0xe0 ? strdup(properties[b % ELEMENTSOF(properties)]) : arg_string(in);
                        } else if (sig == method->signature && (strcmp(method->member, "CreateGroup") == 0 ||
                                                                strcmp(method->member, "GetGroup") == 0 ||
                                                                strcmp(method->member, "RequestAccess") == 0))
                                s = arg_group_name(in);
                        else if (sig == method->signature && (add_protector ||
                                                                strcmp(method->member, "RemoveProtector") == 0))
                                s = arg_protector_name(in);
                        else if (sig == method->signature + 1 && add_protector) {
                                s = arg_protector_type(in);
                                FUZZ_ASSERT(s);
                                snprintf(type, sizeof(type), "%s", s);
                        } else
                                s = arg_string(in); /* justifications, reasons */
                        FUZZ_ASSERT(s);
                        r = sd_bus_message_append(m, "s", s);
                        break;
                }
                case 'u':
                        /* CreateGroup's gid or a generation number. */
                        r = sd_bus_message_append(
                                m, "u", strcmp(method->member, "CreateGroup") == 0 ? arg_gid(in) : arg_generation(in));
                        break;
                case 't':
                        r = sd_bus_message_append(m, "t",
                                                  strcmp(method->member, "GetRequest") == 0
                                                          ? (uint64_t) (fuzz_u8(in) % 8)
                                                          : arg_usec(in));
                        break;
                case 'v':
                        r = append_any_variant(m, in, 0);
                        break;
                case 'a':
                        r = add_protector ? append_protector_options(m, type, in) : append_options(m, in);
                        sig += strlen("{sv}");
                        break;
                default:
                        abort();
                }
        return r;
}

const FuzzBusMethod *fuzz_bus_pick_method(FuzzInput *in) {
        return &methods[fuzz_u8(in) % ELEMENTSOF(methods)];
}
