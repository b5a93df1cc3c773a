/* SPDX-License-Identifier: MIT */
/* A throwaway swtpm on loopback ports, started and stopped by the test (this kernel has no TPM). */
#pragma once

#include <stdbool.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

/* Is swtpm on PATH? Tests skip (exit 77, or the TPM part) without it. */
bool test_swtpm_installed(void);

/* A fresh TPM (new state dir dir/name: a new storage seed; its log in dir/name.log) on a free port
 * pair; DKM_TPM2_TCTI, which the store code and the programs the test starts inherit, points at it.
 * It dies with the process that started it (PR_SET_PDEATHSIG), so a failed ck_assert takes it
 * along. One at a time. */
void test_swtpm_start(const char *dir, const char *name);
void test_swtpm_stop(void);

/* The test's own connection to the TPM, as its owner would use tpm2-tools. Closed right after
 * use: swtpm serves one connection at a time. */
typedef struct TestTpm {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
} TestTpm;

void test_tpm_open(TestTpm *t);
void test_tpm_close(TestTpm *t);

/* The TPM's owner extends a sha256 PCR (with 0x5a bytes). */
void test_tpm_pcr_extend(ESYS_TR pcr);
