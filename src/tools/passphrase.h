/* SPDX-License-Identifier: MIT */
/* Reading a passphrase into secret memory from a file descriptor or the terminal, never argv. */
#pragma once

#include "secret.h"

/* Reads up to the first newline or EOF from fd (at most 1024 bytes). -ENODATA if empty. */
int passphrase_read_fd(int fd, Secret **ret) _warn_unused_result_;

/* Prompts on /dev/tty with echo off. -ENXIO if there is no terminal. With confirm, asks twice. */
int passphrase_read_tty(const char *prompt, int confirm, Secret **ret) _warn_unused_result_;
