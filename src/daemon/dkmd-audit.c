/* SPDX-License-Identifier: MIT */
/* The audit log and its journal copy. */
#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <syslog.h>

#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "dkmd-audit.h"

/* Fixed forever: journalctl MESSAGE_ID=... and catalogs match on them. */
static const struct {
        const char *event;
        const char *id;
        int priority;
} message_ids[] = {
        { "daemon-start", "bb20d79f1cdf40d5a5b750aa7d946273", LOG_INFO },
        { "daemon-stop", "dd72918c67cd42868c94220ce10401ad", LOG_INFO },
        { "group-create", "62d3117d43154b1f82e5e5362d6d13ce", LOG_NOTICE },
        { "policy-change", "0dcceda3c9e64eef8aa35f88a7713f60", LOG_NOTICE },
        { "rollover", "87b2bd718c834a648a8d2650e451109f", LOG_INFO },
        { "activate", "4bbcebced19d4b759e46bb2db68dbc27", LOG_INFO },
        { "archive", "c71e27f046e947a890cd57df4e39fc82", LOG_NOTICE },
        { "retire", "bd3fbc6ebec84a1097fd1b8ee371c552", LOG_WARNING },
        { "load", "73e89e64ae5c4e7e8c38b42afe2cac3b", LOG_INFO },
        { "reload", "74896130e8254df88b428490001b3c8b", LOG_INFO },
        { "human-member-allowed", "57f1fc9779e54c98b7db4b0b0bc01d07", LOG_WARNING },
        { "request", "54522c810d944b93821dd0f56f151895", LOG_NOTICE },
        { "approve", "41798ebc0f1b4b8fbf9df136ef5dcadf", LOG_NOTICE },
        { "deny", "e298e913a41942b98638f69f526ffcdf", LOG_NOTICE },
        { "cancel", "f1a4be3bf87f4fe5a82b221a61a11297", LOG_NOTICE },
        { "grant", "df0e9d65eb4442258447e00a56dc8739", LOG_WARNING },
        { "revoke", "5183be7a857b4a77952684ef4b7d561c", LOG_NOTICE },
        { "expire", "877b7b5271614340bff9c87ac676a092", LOG_NOTICE },
        { "grant-end", "85ba5b4e12894c40be5045967b42c086", LOG_NOTICE },
        { "request-done", "cad8961789f34a3b862f9b0047adb71d", LOG_WARNING },
        { "request-failed", "d5bacbfe32674aedb81cf103db5b11ff", LOG_ERR },
        { "refused-call", "6d1eaefe38e54a13b5cfefaad3c9a387", LOG_WARNING },
        { "protector-add", "69e9247fce12a3f98eede703e645ee60", LOG_WARNING },
        { "protector-remove", "549b7170c2b8aeb67e08971661799904", LOG_WARNING },
        { "protector-check", "c6cafbfa2679df8180626f228e0e5336", LOG_INFO },
        { "store-unlock", "fe6e270346856230aa94856ab0726486", LOG_NOTICE },
        { "store-restored", "a6e77c5c2b62c546fc78f3069e4366fb", LOG_WARNING },
        { "store-withdrawn", "24aa52ddac4a3ab9408b81591e200858", LOG_CRIT },
        { "purge-scheduled", "73f90bd84cef6e5a0121ebdf145b2be1", LOG_CRIT },
        { "purge-cancel", "87dd69f6b7a62794d29cf5df1f9d89d0", LOG_WARNING },
        { "purge", "04d9ce21d84e259d77f71082b859e823", LOG_CRIT },
        { "host-enrol", "c6bf541a9eca4c63a8a55aab8227edbc", LOG_WARNING },
        { "host-remove", "fbdb11a01c9e48fb90c0ad6fff0d3061", LOG_WARNING },
};

const char *dkmd_audit_message_id(const char *event) {
        for (size_t i = 0; i < ELEMENTSOF(message_ids); i++)
                if (strcmp(message_ids[i].event, event) == 0)
                        return message_ids[i].id;
        return NULL;
}

static int event_priority(const char *event, AuditOutcome outcome) {
        if (outcome != AUDIT_OUTCOME_OK)
                return LOG_WARNING;
        for (size_t i = 0; i < ELEMENTSOF(message_ids); i++)
                if (strcmp(message_ids[i].event, event) == 0)
                        return message_ids[i].priority;
        return LOG_NOTICE;
}

int dkmd_audit_record(AuditLog *log, const AuditRecord *rec) {
        uint8_t head[CRYPT_HASH_BYTES];
        char head_hex[2 * CRYPT_HASH_BYTES + 1];
        const char *id = dkmd_audit_message_id(rec->event);
        uint64_t seq;
        int r;

        r = audit_append(log, rec);
        if (r < 0)
                return r;
        seq = audit_head(log, head);
        for (size_t i = 0; i < sizeof(head); i++)
                (void) snprintf(head_hex + 2 * i, 3, "%02x", head[i]);
        /* The head hash in the journal is an outside witness of the chain: a log rewritten
         * later no longer matches what the journal saw. */
        (void) sd_journal_send("MESSAGE=audit: %s %s %s by uid %u (%s): %s", rec->event,
                               audit_outcome_to_string(rec->outcome), rec->object ?: "", (unsigned) rec->uid,
                               rec->comm ?: "", rec->detail ?: "",
                               "MESSAGE_ID=%s", id ?: "", "PRIORITY=%i", event_priority(rec->event, rec->outcome),
                               "DKM_EVENT=%s", rec->event, "DKM_OUTCOME=%s", audit_outcome_to_string(rec->outcome),
                               "DKM_OBJECT=%s", rec->object ?: "", "DKM_DETAIL=%s", rec->detail ?: "",
                               "DKM_CALLER_UID=%u", (unsigned) rec->uid, "DKM_CALLER_PID=%d", (int) rec->pid,
                               "DKM_CALLER_COMM=%s", rec->comm ?: "", "DKM_AUDIT_SEQ=%llu", (unsigned long long) seq,
                               "DKM_AUDIT_HASH=%s", head_hex, NULL);
        return 0;
}
