/* tests/fuzz/fuzz_checkpoint.c: opening a checkpoint the way the three
 * subcommands do (config, training state, vocabulary, then the model):
 *   train  --resume FILE: the flag parser, mn_ckpt_open, the config check
 *          and the training state (the loop itself is not run: it would
 *          write files at the paths the checkpoint names);
 *   sample --ckpt FILE -n 8: language models (the VAE's sample reads the
 *          Fashion-MNIST folder its config names, so it is left out);
 *   eval   --ckpt FILE --data D: every kind, on small data in data/ (text,
 *          Brown) or a generated Fashion-MNIST look-alike.
 * tools/cmd_train.c is included for its file-static parse and read_state. */
#include "fuzz.h"
#include "../../tools/cmd_train.c"
#include <errno.h>
#include <sys/stat.h>
#include <zlib.h>

#ifndef MN_FUZZ_DATA
#error "MN_FUZZ_DATA: the folder of tests/fuzz/data"
#endif

/* A gzip'd IDX file of the given dims: labels cycle 0..9, pixels a pattern. */
static void write_idx(const char *path, int ndim, const uint32_t *dims)
{
    gzFile f = gzopen(path, "wb1");
    unsigned char h[4] = { 0, 0, 8, (unsigned char)ndim };
    size_t n = 1;
    if (!f || gzwrite(f, h, 4) != 4) abort();
    for (int i = 0; i < ndim; i++) {
        unsigned char d[4] = { (unsigned char)(dims[i] >> 24), (unsigned char)(dims[i] >> 16), (unsigned char)(dims[i] >> 8), (unsigned char)dims[i] };
        if (gzwrite(f, d, 4) != 4) abort();
        n *= dims[i];
    }
    unsigned char *payload = malloc(n);
    if (!payload) abort();
    for (size_t i = 0; i < n; i++) payload[i] = (unsigned char)(ndim == 1 ? i % 10 : (i * 37) % 256);
    if (gzwrite(f, payload, (unsigned)n) != (int)n || gzclose(f) != Z_OK) abort();
    free(payload);
}

/* Fashion-MNIST's layout with the fewest images eval accepts: 5,000
 * validation images plus 16 for training, and 16 test images. */
static const char *fake_fmnist(void)
{
    static char dir[600];
    char p[700];
    snprintf(dir, sizeof dir, "%s/fmnist", fuzz_dir());
    if (mkdir(dir, 0700) && errno != EEXIST) abort();
    const char *split[2] = { "train", "t10k" };
    uint32_t count[2] = { 5016, 16 };
    for (int s = 0; s < 2; s++) {
        uint32_t im[3] = { count[s], 28, 28 };
        snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", dir, split[s]);
        write_idx(p, 3, im);
        snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte.gz", dir, split[s]);
        write_idx(p, 1, &count[s]);
    }
    return dir;
}

static const char *fmnist_dir;

static void run(int (*cmd)(int, char **), const char *a0, const char *a1, const char *a2, const char *a3, const char *a4)
{
    char *argv[] = { (char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL };
    int argc = 0;
    while (argv[argc]) argc++;
    cmd(argc, argv);
}

/* train --resume as far as the loop: flags, checkpoint, config check, and
 * the stored training state parsed and fitted to a corpus of 1,000 items. */
static void as_train(const char *path)
{
    char *argv[] = { "train", "--resume", (char *)path, NULL };
    mn_train_cfg c;
    mn_params *P = NULL;
    run_flags rf = { 0 };
    if (!parse(3, argv, &c, &P, &rf)) {
        loop_state ls;
        (void)read_state(P, path, 1000, &c, &ls);
    }
    mn_params_free(P);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fmnist_dir) fmnist_dir = fake_fmnist();
    char path[640];
    fuzz_write(path, sizeof path, "input.safetensors", data, size);
    as_train(path);
    mn_params *P;
    mn_train_cfg c;
    if (mn_ckpt_open(path, &P, &c)) return 0;
    mn_params_free(P);
    if (mn_cfg_is_lm(&c)) {
        run(cmd_sample, "sample", "--ckpt", path, "-n", "8");
        run(cmd_eval, "eval", "--ckpt", path, "--data", MN_FUZZ_DATA "/eval.txt");
    } else if (!strcmp(c.model, "tagger")) run(cmd_eval, "eval", "--ckpt", path, "--data", MN_FUZZ_DATA "/brown");
    else run(cmd_eval, "eval", "--ckpt", path, "--data", fmnist_dir);
    return 0;
}
