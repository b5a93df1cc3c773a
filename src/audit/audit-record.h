/* SPDX-License-Identifier: MIT */
/* One audit record as a line of text: format (hash, signature) and strict parsing. Pure: no I/O. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "audit.h"

#define AUDIT_FORMAT_VERSION 1U
/* The longest line the format can produce (every byte escaped as \xHH), plus slack. */
#define AUDIT_LINE_MAX (4U * (AUDIT_EVENT_MAX + AUDIT_COMM_MAX + AUDIT_OBJECT_MAX + AUDIT_DETAIL_MAX) + 512U)
/* Checkpoint signatures cover this prefix and the line up to " sig=", so the key signs nothing else. */
#define AUDIT_SIGN_CONTEXT "dkm-audit-checkpoint-v1\n"

/* 0 if rec can be recorded: a well-formed event name, a known outcome, strings within bounds. */
int audit_record_check(const AuditRecord *rec);

/* Each formats one line, '\n' included, into buf (at least AUDIT_LINE_MAX + 1 bytes), and gives
 * its length and hash. -EINVAL for a bad record. */
int audit_format_event(uint64_t seq, uint64_t time, const AuditRecord *rec, const uint8_t prev[CRYPT_HASH_BYTES],
                       char *buf, size_t *ret_len, uint8_t ret_hash[CRYPT_HASH_BYTES]) _warn_unused_result_;
/* sk is the Ed25519 signing key (crypt_sign_seed_keypair()). */
int audit_format_checkpoint(uint64_t seq, uint64_t time, AuditCheckpointReason reason, uint64_t interval,
                            const uint8_t prev[CRYPT_HASH_BYTES], const Secret *sk, char *buf, size_t *ret_len,
                            uint8_t ret_hash[CRYPT_HASH_BYTES]) _warn_unused_result_;

/* Parses one line (without its '\n') and checks its own hash; not prev, not the signature.
 * -EBADMSG with a reason in why (why_size bytes). *ret_signed_len is the length of the text a
 * checkpoint's signature covers (after AUDIT_SIGN_CONTEXT). */
int audit_parse_line(const char *line, size_t len, AuditEntry *ret, size_t *ret_signed_len, char *why,
                     size_t why_size) _warn_unused_result_;

/* 0 if the checkpoint line (signed_len bytes as given by audit_parse_line) carries a valid signature. */
int audit_checkpoint_verify(const char *line, size_t signed_len, const uint8_t sig[CRYPT_SIGN_BYTES],
                            const uint8_t public_key[CRYPT_SIGN_PUBLIC_KEY_BYTES]) _warn_unused_result_;

/* Strict lowercase hex, and decimals without sign or leading zeros. -EBADMSG otherwise. */
int audit_parse_hex(const char *s, size_t len, uint8_t *ret, size_t size);
int audit_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *ret);
void audit_hex(const uint8_t *p, size_t size, char *ret);
