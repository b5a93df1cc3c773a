/* SPDX-License-Identifier: MIT */
/* dkmd's audit sink: each record into the hash-chained log (durable, or the operation is
 * refused), then a copy to the journal with structured fields and a MESSAGE_ID per event. */
#pragma once

#include "audit.h"

/* The MESSAGE_ID of an event kind (docs/AUDIT.md lists them), NULL for an unknown event. */
const char *dkmd_audit_message_id(const char *event);

/* Append rec to log (fsynced) and copy it to the journal with the new head of the chain.
 * Returns audit_append()'s result; the journal copy is best effort (it is a copy). */
int dkmd_audit_record(AuditLog *log, const AuditRecord *rec);
