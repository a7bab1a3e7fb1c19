/* tests/test_readers.c: the data readers of `mnemo train/eval` on hostile
 * and careless input: text files that are devices, directories, pipes or
 * binary; characters and words outside a checkpoint's vocabulary; IDX
 * headers that promise more than the file holds; Brown sentences longer
 * than memory; corpora too small for one batch of each split. */
#include "harness.h"
#include "train.h"
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

static char dir[256];

/* Under ASan a failed huge allocation returns NULL (as libc's does) instead of aborting. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static const char *path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_file(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

#define has(msg, frag) ck_assert_msg(strstr((msg), (frag)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (frag))

static mn_status load_one(const char *p, mn_text *t)
{
    const char *files[2] = { p, NULL };
    return mn_text_load(files, t);
}

/* ---- text ---- */

START_TEST(text_refuses_what_is_not_a_regular_file)
{
    mn_text t;
    ck_assert_int_eq(load_one("/dev/zero", &t), MN_ERR_IO);           /* would never end */
    has(mn_errmsg(), "/dev/zero"); has(mn_errmsg(), "a device");
    ck_assert_int_eq(load_one(dir, &t), MN_ERR_IO);
    has(mn_errmsg(), "is a directory");
    ck_assert_int_eq(mkfifo(path("fifo"), 0600), 0);
    ck_assert_int_eq(load_one(path("fifo"), &t), MN_ERR_IO);         /* fopen would wait for a writer */
    has(mn_errmsg(), "pipe");
    ck_assert_int_eq(load_one(path("missing.txt"), &t), MN_ERR_IO);
    has(mn_errmsg(), "missing.txt");
    write_file(path("empty.txt"), "", 0);
    ck_assert_int_eq(load_one(path("empty.txt"), &t), MN_ERR_FORMAT);
    has(mn_errmsg(), "empty.txt");
}
END_TEST

START_TEST(text_refuses_nul_bytes)
{
    mn_text t;
    write_file(path("bin.txt"), "abc\0def", 7);
    ck_assert_int_eq(load_one(path("bin.txt"), &t), MN_ERR_FORMAT);
    has(mn_errmsg(), "bin.txt"); has(mn_errmsg(), "NUL byte at offset 3");
    ck_assert_ptr_null(t.ids);
}
END_TEST

START_TEST(text_keeps_every_byte_and_drops_fortune_separators)
{
    const char src[] = "one\n%\ntwo 100% sure\n%";
    mn_text t;
    write_file(path("f.txt"), src, sizeof src - 1);
    write_file(path("g.txt"), "xyz", 3);
    const char *files[3] = { path("f.txt"), path("g.txt"), NULL };
    ck_assert_ok(mn_text_load(files, &t));
    const char want[] = "one\n\ntwo 100% sure\n\nxyz";
    ck_assert_int_eq(t.n, (int64_t)sizeof want - 1);
    for (int64_t i = 0; i < t.n; i++) ck_assert_int_eq(t.chars[t.ids[i]], (unsigned char)want[i]);
    mn_text_free(&t);
}
END_TEST

START_TEST(characters_outside_the_vocabulary_are_counted)
{
    mn_text v, w, x;
    ck_assert_ok(mn_text_from_bytes("ab c", 4, &v));
    int32_t ids[6];
    ck_assert_int_eq(mn_text_encode(&v, "abxcé", ids, 6), 3);          /* x and the two bytes of é */
    ck_assert_int_eq(ids[2], v.index[' ']);                             /* the documented unknown symbol */
    ck_assert_int_eq(ids[3], v.index['c']);
    ck_assert_int_eq(mn_text_unknown_id(&v), v.index[' ']);
    ck_assert_ok(mn_text_from_bytes("bc", 2, &w));                      /* no space: id 0 */
    ck_assert_int_eq(mn_text_unknown_id(&w), 0);
    ck_assert_ok(mn_text_from_bytes("a?c", 3, &x));                     /* re-encoded onto v */
    ck_assert_int_eq(mn_text_reencode(&x, &v), 1);
    ck_assert_int_eq(x.vocab, v.vocab);
    ck_assert_int_eq(x.ids[0], v.index['a']);
    ck_assert_int_eq(x.ids[1], v.index[' ']);
    ck_assert_int_eq(x.ids[2], v.index['c']);
    mn_text_free(&v); mn_text_free(&w); mn_text_free(&x);
}
END_TEST

/* ---- IDX ---- */

static void write_gz(const char *p, const unsigned char *hdr, size_t nh, size_t zeros)
{
    gzFile f = gzopen(p, "wb9");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, hdr, (unsigned)nh), (int)nh);
    static unsigned char z[65536];
    for (size_t done = 0; done < zeros;) {
        unsigned n = zeros - done < sizeof z ? (unsigned)(zeros - done) : (unsigned)sizeof z;
        ck_assert_int_eq(gzwrite(f, z, n), (int)n);
        done += n;
    }
    gzclose(f);
}

/* 5,000,000 images of 28 x 28 declared (3.9 GB) over 1 MB of data: refused
 * from the sizes alone, before any allocation or inflation. */
START_TEST(idx_header_bounded_by_the_file)
{
    unsigned char h[16] = { 0, 0, 8, 3, 0, 0x4c, 0x4b, 0x40, 0, 0, 0, 28, 0, 0, 0, 28 };   /* 5,000,000 */
    write_gz(path("big-images-idx3-ubyte.gz"), h, sizeof h, 1 << 20);
    mn_idx x;
    clock_t t0 = clock();
    ck_assert_int_eq(mn_idx_read(path("big-images-idx3-ubyte.gz"), &x), MN_ERR_FORMAT);
    double cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    has(mn_errmsg(), "big-images-idx3-ubyte.gz"); has(mn_errmsg(), "declares 3920000000 data bytes");
    ck_assert_msg(cpu < 0.05, "took %.3f s of CPU: the data was inflated", cpu);
    ck_assert_ptr_null(x.data);
    write_file(path("big.raw"), h, sizeof h);                            /* plain file: its size */
    ck_assert_int_eq(mn_idx_read(path("big.raw"), &x), MN_ERR_FORMAT);
    has(mn_errmsg(), "big.raw"); has(mn_errmsg(), "can hold at most 16");
    ck_assert_int_eq(mn_idx_read("/dev/zero", &x), MN_ERR_IO);
}
END_TEST

/* ---- Brown ---- */

/* A corpus folder of nsent sentences over words w0..w9 (and `extra` on
 * every 3rd sentence), in files ca01 and cb02. */
static void write_brown(const char *folder, int nsent, const char *extra)
{
    mkdir(folder, 0700);
    char p[600];
    for (int f = 0; f < 2; f++) {
        snprintf(p, sizeof p, "%s/%s", folder, f ? "cb02" : "ca01");
        FILE *fp = fopen(p, "w");
        ck_assert_ptr_nonnull(fp);
        for (int s = f; s < nsent; s += 2) {
            fprintf(fp, "\n");                                           /* blank lines between sentences */
            for (int k = 0; k < 3 + s % 4; k++) fprintf(fp, "W%d/nn ", (s * 7 + k * 3) % (k ? 10 : 4));
            if (extra && s % 3 == 0) fprintf(fp, "%s/jj ", extra);
            fprintf(fp, "./.\n");
        }
        fclose(fp);
    }
}

static mn_train_cfg tagger_cfg(const char *data, int batch)
{
    mn_train_cfg c;
    ck_assert_ok(mn_cfg_defaults(&c, "tagger"));
    snprintf(c.data, sizeof c.data, "%s", data);
    c.batch = batch; c.seq = 8;
    return c;
}

static int word_id(const mn_data *d, const char *w)
{
    for (int i = 0; i < d->nwords; i++) if (!strcmp(d->vocab[i], w)) return i;
    return -1;
}

/* eval --data: the checkpoint's word ids for every word, <unk> for new ones. */
START_TEST(tagger_data_takes_the_checkpoints_vocabulary)
{
    char longword[80];
    memset(longword, 'q', 70);
    longword[70] = 0;
    write_brown(path("train"), 60, longword);                           /* the checkpoint's corpus */
    write_brown(path("other"), 30, "zebra");                             /* other frequencies, a new word */
    mn_train_cfg c = tagger_cfg(path("train"), 2);
    mn_data a, b, own;
    ck_assert_ok(mn_data_load(&a, &c));
    char *json = mn_data_vocab_json(&a);
    json_t *parsed = json_loads(json, 0, NULL);                          /* long words are not cut */
    ck_assert_int_eq(json_array_size(parsed), a.nwords);
    ck_assert_str_eq(json_string_value(json_array_get(parsed, word_id(&a, longword))), longword);
    json_decref(parsed);
    snprintf(c.data, sizeof c.data, "%s", path("other"));
    ck_assert_ok(mn_data_load(&own, &c));
    ck_assert_ok(mn_data_load_vocab(&b, &c, json));
    ck_assert_int_eq(b.nwords, a.nwords);
    ck_assert_int_eq(b.nsent, own.nsent);
    int64_t zebra = 0;
    for (int64_t i = 0; i < b.nsent * c.seq; i++) {
        int32_t w = b.words[i], o = own.words[i];
        if (o <= 1) { ck_assert_int_eq(w, o); continue; }               /* padding */
        const char *word = own.vocab[o];
        int want = word_id(&a, word);
        ck_assert_int_eq(w, want < 0 ? 1 : want);
        zebra += !strcmp(word, "zebra");
    }
    ck_assert_int_eq(b.unknown, zebra);
    ck_assert_int_gt(zebra, 0);
    mn_data_free(&b);
    ck_assert_int_eq(mn_data_load_vocab(&b, &c, "{\"not\":\"a list\"}"), MN_ERR_FORMAT);
    has(mn_errmsg(), "mnemo.vocab");
    free(json);
    mn_data_free(&a); mn_data_free(&own);
}
END_TEST

/* Rows of a --seq that cannot be allocated: a clear error, no crash. */
START_TEST(brown_allocation_failure_is_an_error)
{
    write_brown(path("mem"), 30, NULL);
    mn_train_cfg c = tagger_cfg(path("mem"), 2);
    c.seq = 1 << 30;                                                     /* 4096 rows x 4 GB */
    mn_data d;
    ck_assert_int_eq(mn_data_load(&d, &c), MN_ERR_NOMEM);
    has(mn_errmsg(), "out of memory"); has(mn_errmsg(), "ca01");
    ck_assert_ptr_null(d.words);
    c.seq = 8;
    snprintf(c.data, sizeof c.data, "%s", path("mem/ca01"));           /* a file, not the folder */
    ck_assert_int_eq(mn_data_load(&d, &c), MN_ERR_IO);
    has(mn_errmsg(), "not a directory");
}
END_TEST

/* Fewer validation sentences than one batch: the sizes, not a NaN loss later. */
START_TEST(corpus_too_small_for_a_validation_batch)
{
    write_brown(path("small"), 40, NULL);                                /* 4 validation sentences */
    mn_train_cfg c = tagger_cfg(path("small"), 8);
    mn_data d;
    ck_assert_int_eq(mn_data_load(&d, &c), MN_ERR_FORMAT);
    has(mn_errmsg(), "40 sentences (36 training, 4 validation"); has(mn_errmsg(), "--batch 8");
    c.batch = 4;
    ck_assert_ok(mn_data_load(&d, &c));
    ck_assert_int_eq(mn_data_val_batches(&d, &c), 1);
    mn_data_free(&d);
}
END_TEST

/* The word vocabulary is stored as JSON text: a word that is not UTF-8 is
 * refused naming file and line (it made every save of the run fail). */
START_TEST(brown_word_not_utf8_is_refused)
{
    write_brown(path("latin1"), 40, "caf\xe9");
    mn_train_cfg c = tagger_cfg(path("latin1"), 4);
    mn_data d;
    ck_assert_int_eq(mn_data_load(&d, &c), MN_ERR_FORMAT);
    has(mn_errmsg(), "ca01 line 2: word \"caf\xe9\" is not valid UTF-8");
    write_brown(path("utf8"), 40, "caf\xc3\xa9");
    c = tagger_cfg(path("utf8"), 4);
    ck_assert_ok(mn_data_load(&d, &c));
    char *json = mn_data_vocab_json(&d);
    ck_assert_ptr_nonnull(json);
    has(json, "caf\xc3\xa9");
    free(json);
    mn_data_free(&d);
}
END_TEST

START_TEST(images_too_few_for_a_batch)
{
    mkdir(path("fm"), 0700);
    const char *split[2] = { "train", "t10k" };
    int n[2] = { 5010, 3 };
    for (int s = 0; s < 2; s++) {
        char name[128];
        unsigned char hi[16] = { 0, 0, 8, 3, 0, 0, (unsigned char)(n[s] >> 8), (unsigned char)n[s], 0, 0, 0, 28, 0, 0, 0, 28 };
        unsigned char hl[8] = { 0, 0, 8, 1, 0, 0, (unsigned char)(n[s] >> 8), (unsigned char)n[s] };
        snprintf(name, sizeof name, "fm/%s-images-idx3-ubyte.gz", split[s]);
        write_gz(path(name), hi, sizeof hi, (size_t)n[s] * 784);
        snprintf(name, sizeof name, "fm/%s-labels-idx1-ubyte.gz", split[s]);
        write_gz(path(name), hl, sizeof hl, (size_t)n[s]);
    }
    mn_train_cfg c;
    ck_assert_ok(mn_cfg_defaults(&c, "mlp"));
    snprintf(c.data, sizeof c.data, "%s", path("fm"));
    c.batch = 8;
    mn_data d;
    ck_assert_int_eq(mn_data_load(&d, &c), MN_ERR_FORMAT);
    has(mn_errmsg(), "5010 training images"); has(mn_errmsg(), "3 test images");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("readers");
    TCase *tc = tcase_create("readers");
    tcase_add_test(tc, text_refuses_what_is_not_a_regular_file);
    tcase_add_test(tc, text_refuses_nul_bytes);
    tcase_add_test(tc, text_keeps_every_byte_and_drops_fortune_separators);
    tcase_add_test(tc, characters_outside_the_vocabulary_are_counted);
    tcase_add_test(tc, idx_header_bounded_by_the_file);
    tcase_add_test(tc, tagger_data_takes_the_checkpoints_vocabulary);
    tcase_add_test(tc, brown_allocation_failure_is_an_error);
    tcase_add_test(tc, brown_word_not_utf8_is_refused);
    tcase_add_test(tc, corpus_too_small_for_a_validation_batch);
    tcase_add_test(tc, images_too_few_for_a_batch);
    suite_add_tcase(s, tc);
    return mn_test_run_in_tmpdir(s, dir, sizeof dir, "mnemo-readers");
}
