/* SPDX-License-Identifier: MIT */
/* dkm: encrypt, decrypt, rewrap and inspect data with key groups, through libdkm. */
#include <dkm.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "dkm-cli.h"
#include "fileio.h"
#include "secret.h"

Args arg;

static Output *output_for_signal = NULL;

static void on_signal(int sig) {
        /* A killed run must not leave its temporary file behind. */
        if (output_for_signal)
                output_abort(output_for_signal);
        signal(sig, SIG_DFL);
        raise(sig);
}

static int exit_status(int r) {
        switch (-r) {
        case ENOKEY:
                return EXIT_NO_KEY;
        case EACCES:
                return EXIT_ACCESS;
        case EKEYREVOKED:
                return EXIT_RETIRED;
        case EKEYEXPIRED:
                return EXIT_EXPIRED;
        case EBADMSG:
                return EXIT_AUTH;
        case EPIPE:
                return EXIT_TRUNCATED;
        case ENOMSG:
        case EMEDIUMTYPE:
                return EXIT_NOT_DKM;
        case EPROTONOSUPPORT:
        case EOPNOTSUPP:
                return EXIT_UNSUPPORTED;
        default:
                return EXIT_FAILURE;
        }
}

static const char *what_to_do(int r, const Context *c) {
        switch (-r) {
        case ENOKEY:
                return arg.group ? "check the group name and that the group is loaded on this host"
                                 : "the group or generation is not loaded on this host (or not known to it)";
        case EACCES:
                return "run this as a service account whose groups include the key group's gid";
        case EKEYREVOKED:
                return "request access again if it was revoked; data under a retired generation must be restored "
                       "from its source";
        case EKEYEXPIRED:
                return "request access to the key group again";
        case EBADMSG:
                return c->streamed_to_stdout ? "check --ad/--ad-file; discard everything written to standard output"
                                             : "check --ad/--ad-file and the input file; nothing was written";
        case EPIPE:
                return c->streamed_to_stdout ? "the input is incomplete; discard everything written to standard output"
                                             : "the input is incomplete; nothing was written";
        case ENOMSG:
                return "check that the input is the output of 'dkm encrypt'";
        case EMEDIUMTYPE:
                return "this kind of ciphertext cannot be used here";
        case EPROTONOSUPPORT:
                return "upgrade dkm to read it";
        case EOPNOTSUPP:
                return "decrypt it on a machine with AES-NI";
        case EFBIG:
                return "use --stream";
        default:
                return "see dkm --help";
        }
}

int fail(int r, const Context *c) {
        char subject[160] = "";

        if (c->have_info) {
                char hex[2 * DKM_GROUP_ID_BYTES + 1];

                for (size_t i = 0; i < DKM_GROUP_ID_BYTES; i++)
                        snprintf(hex + 2 * i, 3, "%02x", c->info.group_id[i]);
                snprintf(subject, sizeof(subject), " (generation %u of key group %s)", c->info.generation,
                         c->info.group[0] ? c->info.group : hex);
        } else if (arg.group)
                snprintf(subject, sizeof(subject), " for key group %s", arg.group);
        fprintf(stderr, "dkm: %s%s: %s; %s.\n", c->verb, subject, dkm_strerror(r), what_to_do(r, c));
        return exit_status(r);
}

int fail_io(const char *what, const char *path, int r) {
        fprintf(stderr, "dkm: cannot %s %s: %s.\n", what, path ?: "standard output", strerror(-r));
        return EXIT_IO;
}

static int open_input(int *ret) {
        int fd;

        if (!arg.input || strcmp(arg.input, "-") == 0) {
                *ret = STDIN_FILENO;
                return 0;
        }
        fd = open(arg.input, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return fail_io("open", arg.input, negative_errno());
        *ret = fd;
        return 0;
}

static int read_ad(Buffer *ret) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        if (arg.ad) {
                ret->size = strlen(arg.ad);
                ret->data = (uint8_t *) strdup(arg.ad);
                ret->cap = ret->size + 1;
                return ret->data ? 0 : -ENOMEM;
        }
        if (!arg.ad_file)
                return 0;
        r = read_file_full(AT_FDCWD, arg.ad_file, AD_FILE_MAX, &text, &size);
        if (r < 0)
                return fail_io("read", arg.ad_file, r);
        ret->data = (uint8_t *) TAKE_PTR(text);
        ret->size = size;
        ret->cap = size + 1;
        return 0;
}

void io_done(Io *io) {
        output_for_signal = NULL;
        output_close(&io->out);
        if (io->in > STDIN_FILENO)
                safe_close(io->in);
        buffer_wipe_free(&io->ad);
        buffer_wipe_free(&io->data);
}

int io_open(Io *io, bool binary_out, mode_t mode) {
        int r;

        r = read_ad(&io->ad);
        if (r != 0)
                return r < 0 ? EXIT_FAILURE : r;
        r = open_input(&io->in);
        if (r != 0)
                return r;
        if (binary_out && (!arg.output || strcmp(arg.output, "-") == 0) && isatty(STDOUT_FILENO)) {
                fprintf(stderr, "dkm: refusing to write a binary ciphertext to a terminal; use -o FILE or redirect.\n");
                return EXIT_USAGE;
        }
        r = output_open(&io->out, arg.output, mode);
        if (r < 0)
                return fail_io("create output file", arg.output, r);
        output_for_signal = &io->out;
        return 0;
}

int io_write(Io *io, const void *p, size_t n) {
        int r = output_write(&io->out, p, n);
        return r < 0 ? fail_io("write", arg.output, r) : 0;
}

int io_commit(Io *io) {
        int r = output_commit(&io->out);
        return r < 0 ? fail_io("write", arg.output, r) : 0;
}

typedef struct Verb {
        const char *name;
        int (*run)(void);
        const char *usage;
} Verb;

static const Verb verbs[] = {
        { "encrypt", verb_encrypt,
          "encrypt -g GROUP [--ad=TEXT|--ad-file=FILE] [-i IN] [-o OUT] [--stream|--one-shot]" },
        { "decrypt", verb_decrypt, "decrypt [--ad=TEXT|--ad-file=FILE] [-i IN] [-o OUT]" },
        { "rewrap", verb_rewrap, "rewrap [--ad=TEXT|--ad-file=FILE] [-i IN] [-o OUT]" },
        { "info", verb_info, "info [-i IN]" },
};

static void help(void) {
        printf("dkm [OPTIONS] COMMAND\n\n"
               "Encrypt and decrypt with the key groups of this host (keys come from the kernel keyrings;\n"
               "the caller must be in the key group's gid). Reads standard input and writes standard\n"
               "output unless -i/-o are given.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %s\n", verbs[i].usage);
        printf("\nOptions:\n"
               "  -g --group=GROUP     key group to encrypt for (encrypt)\n"
               "     --ad=TEXT         associated data: bound to the ciphertext, not stored in it\n"
               "     --ad-file=FILE    associated data from a file\n"
               "  -i --input=FILE      read FILE instead of standard input\n"
               "  -o --output=FILE     write FILE (atomically, only once complete and verified)\n"
               "     --stream          always write a stream (default: streams for input over 1 MiB)\n"
               "     --one-shot        always write a one-shot message (input up to 1 GiB)\n"
               "  -h --help            show this help\n"
               "     --version         show the version\n"
               "\nA stream decrypted to standard output is written as it is verified: if dkm exits\n"
               "non-zero, discard what it wrote. With -o, nothing is written unless all of it verified.\n"
               "\nExit status: 0 ok, 1 other failure, 2 usage, 3 no such key group or generation,\n"
               "4 not a member of the key group, 5 generation retired, 6 access expired,\n"
               "7 authentication failed (corrupted, tampered or wrong associated data),\n"
               "8 truncated stream, 9 not a dkm ciphertext, 10 unsupported (newer format),\n"
               "11 input/output error.\n");
}

/* The rule libdkm applies, checked here so a typo is a usage error rather than a lookup. */
static bool group_name_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > DKM_GROUP_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                bool alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
                if (!alnum && (i == 0 || (s[i] != '_' && s[i] != '.' && s[i] != '-')))
                        return false;
        }
        return true;
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_AD = 0x100, ARG_AD_FILE, ARG_STREAM, ARG_ONESHOT, ARG_VERSION };
        static const struct option options[] = { { "help", no_argument, NULL, 'h' },
                                                 { "version", no_argument, NULL, ARG_VERSION },
                                                 { "group", required_argument, NULL, 'g' },
                                                 { "ad", required_argument, NULL, ARG_AD },
                                                 { "ad-file", required_argument, NULL, ARG_AD_FILE },
                                                 { "input", required_argument, NULL, 'i' },
                                                 { "output", required_argument, NULL, 'o' },
                                                 { "stream", no_argument, NULL, ARG_STREAM },
                                                 { "one-shot", no_argument, NULL, ARG_ONESHOT },
                                                 {} };
        int c;

        opterr = 0; /* our own one-line messages */
        while ((c = getopt_long(argc, argv, ":hg:i:o:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("dkm %s (libdkm %s)\n", DKM_VERSION, dkm_version());
                        return 0;
                case 'g':
                        arg.group = optarg;
                        break;
                case ARG_AD:
                        arg.ad = optarg;
                        break;
                case ARG_AD_FILE:
                        arg.ad_file = optarg;
                        break;
                case 'i':
                        arg.input = optarg;
                        break;
                case 'o':
                        arg.output = optarg;
                        break;
                case ARG_STREAM:
                case ARG_ONESHOT:
                        if (arg.format != FORMAT_AUTO) {
                                fprintf(stderr, "dkm: --stream and --one-shot exclude each other.\n");
                                return -EINVAL;
                        }
                        arg.format = c == ARG_STREAM ? FORMAT_STREAM : FORMAT_ONESHOT;
                        break;
                case ':':
                        fprintf(stderr, "dkm: option '%s' needs a value; see dkm --help.\n", argv[optind - 1]);
                        return -EINVAL;
                default:
                        fprintf(stderr, "dkm: unknown option '%s'; see dkm --help.\n", argv[optind - 1]);
                        return -EINVAL;
                }
        if (arg.ad && arg.ad_file) {
                fprintf(stderr, "dkm: give --ad or --ad-file, not both.\n");
                return -EINVAL;
        }
        if (arg.group && !group_name_is_valid(arg.group)) {
                fprintf(stderr, "dkm: '%.80s' is not a valid key group name ([a-z0-9][a-z0-9_.-]*, at most %u).\n",
                        arg.group, DKM_GROUP_NAME_MAX);
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };
        const Verb *v = NULL;
        int r;

        /* Plaintext and keys pass through this process: no core dumps. (libdkm also makes the
         * process non-dumpable once it loads a key.) */
        (void) setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : 0;
        if (optind >= argc) {
                fprintf(stderr, "dkm: no command given; see dkm --help.\n");
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(argv[optind], verbs[i].name) == 0)
                        v = &verbs[i];
        if (!v) {
                fprintf(stderr, "dkm: unknown command '%s'; see dkm --help.\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (optind + 1 < argc) {
                fprintf(stderr, "dkm: unexpected argument '%s' (input comes from -i FILE or standard input).\n",
                        argv[optind + 1]);
                return EXIT_USAGE;
        }
        if (arg.group && v->run != verb_encrypt) {
                fprintf(stderr, "dkm: --group is for encrypt only: a ciphertext names its own group.\n");
                return EXIT_USAGE;
        }
        if (arg.format != FORMAT_AUTO && v->run != verb_encrypt) {
                fprintf(stderr, "dkm: --stream and --one-shot are for encrypt only: the input says what it is.\n");
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                signal(sigs[i], on_signal);
        return v->run();
}
