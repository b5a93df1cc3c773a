/* SPDX-License-Identifier: MIT */
/* A throwaway swtpm on loopback ports, started and stopped by the test (this kernel has no TPM). */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-swtpm.h"

static pid_t swtpm_pid = -1;
static char tcti[64];

bool test_swtpm_installed(void) {
        return system("command -v swtpm >/dev/null") == 0;
}

/* A port P with P+1 also free on 127.0.0.1: the kernel picks P, we check P+1. Another process may
 * take either before swtpm binds them; swtpm then exits and the caller tries again. */
static int free_port_pair(void) {
        for (int attempt = 0; attempt < 50; attempt++) {
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t l = sizeof(a);
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd2, port;
                bool ok;

                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
                ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &a, &l), 0);
                port = ntohs(a.sin_port);
                fd2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                ck_assert_int_ge(fd2, 0);
                a.sin_port = htons((uint16_t) (port + 1));
                ok = port < 65535 && bind(fd2, (struct sockaddr *) &a, sizeof(a)) == 0;
                close(fd2);
                close(fd);
                if (ok)
                        return port;
        }
        ck_abort_msg("no free loopback port pair");
        return -1;
}

static bool port_accepts(int port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

        ck_assert_int_ge(fd, 0);
        r = connect(fd, (struct sockaddr *) &a, sizeof(a));
        close(fd);
        return r == 0;
}

void test_swtpm_start(const char *dir, const char *name) {
        char state[192], server[64], ctrl[64], logf[192];

        snprintf(state, sizeof(state), "%s/%s", dir, name);
        ck_assert_int_eq(mkdir(state, 0700), 0);
        snprintf(logf, sizeof(logf), "%s/%s.log", dir, name);
        for (int attempt = 0; attempt < 5; attempt++) {
                int port = free_port_pair();

                snprintf(server, sizeof(server), "type=tcp,port=%d,bindaddr=127.0.0.1", port);
                snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%d,bindaddr=127.0.0.1", port + 1);
                fflush(NULL);
                swtpm_pid = fork();
                ck_assert_int_ge(swtpm_pid, 0);
                if (swtpm_pid == 0) {
                        char sd[200];
                        int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

                        /* A failed ck_assert ends the test's process without its teardown: the
                         * TPM goes with it. */
                        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                        if (fd >= 0) {
                                (void) dup2(fd, STDOUT_FILENO);
                                (void) dup2(fd, STDERR_FILENO);
                        }
                        snprintf(sd, sizeof(sd), "dir=%s", state);
                        execlp("swtpm", "swtpm", "socket", "--tpm2", "--server", server, "--ctrl", ctrl, "--tpmstate",
                               sd, "--flags", "not-need-init,startup-clear", (char *) NULL);
                        _exit(127);
                }
                for (int i = 0; i < 500; i++) {
                        if (waitpid(swtpm_pid, NULL, WNOHANG) == swtpm_pid) {
                                swtpm_pid = -1;
                                break;
                        }
                        if (port_accepts(port)) {
                                snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", port);
                                ck_assert_int_eq(setenv("DKM_TPM2_TCTI", tcti, 1), 0);
                                return;
                        }
                        usleep(10 * 1000);
                }
                if (swtpm_pid > 0) {
                        (void) kill(swtpm_pid, SIGKILL);
                        (void) waitpid(swtpm_pid, NULL, 0);
                        swtpm_pid = -1;
                }
        }
        ck_abort_msg("swtpm did not start (see %s)", logf);
}

void test_swtpm_stop(void) {
        if (swtpm_pid <= 0)
                return;
        ck_assert_int_eq(kill(swtpm_pid, SIGTERM), 0);
        ck_assert_int_eq(waitpid(swtpm_pid, NULL, 0), swtpm_pid);
        swtpm_pid = -1;
}

void test_tpm_open(TestTpm *t) {
        ck_assert_int_eq(Tss2_TctiLdr_Initialize(tcti, &t->tcti), TSS2_RC_SUCCESS);
        ck_assert_int_eq(Esys_Initialize(&t->esys, t->tcti, NULL), TSS2_RC_SUCCESS);
}

void test_tpm_close(TestTpm *t) {
        Esys_Finalize(&t->esys);
        Tss2_TctiLdr_Finalize(&t->tcti);
}

void test_tpm_pcr_extend(ESYS_TR pcr) {
        TPML_DIGEST_VALUES d = { .count = 1, .digests[0] = { .hashAlg = TPM2_ALG_SHA256 } };
        TestTpm t;

        memset(d.digests[0].digest.sha256, 0x5a, sizeof(d.digests[0].digest.sha256));
        test_tpm_open(&t);
        ck_assert_int_eq(Esys_PCR_Extend(t.esys, pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d),
                         TSS2_RC_SUCCESS);
        test_tpm_close(&t);
}
