/* tests/test_conll.c: named-entity data and metrics. The CoNLL reader and
 * its errors (file and line), the vocabularies, entity extraction as
 * seqeval's default mode reads tags (tricky cases worked out by hand), tag
 * scheme detection and conversion (by hand and round trips), the entity-
 * and token-level reports (hand-computed numbers, seqeval's documented
 * examples, and fixtures from the independent Python implementation in
 * tests/fixtures/gen_ner_fixtures.py), and scripts/brown-to-conll.py. */
#include "harness.h"
#include "conll.h"
#include "ner.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[256];

static const char *fixture(const char *name)
{
    static char p[1024];
    const char *d = getenv("MNEMO_FIXTURES");
    snprintf(p, sizeof p, "%s/%s", d ? d : "tests/fixtures", name);
    return p;
}

static const char *write_file(const char *name, const char *bytes, size_t n)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return p;
}

#define ck_assert_errmsg_has(text) ck_assert_msg(strstr(mn_errmsg(), (text)) != NULL, "message \"%s\" lacks \"%s\"", mn_errmsg(), (text))

/* ---- tag sequences written as text: tags split by spaces, sentences by " | " ---- */

typedef struct {
    int32_t ids[512];
    int64_t sent[128];
    int64_t nsent;
} seq;

static void make_seq(mn_tagset *ts, const char *text, seq *q)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", text);
    int64_t n = 0;
    q->nsent = 0;
    q->sent[0] = 0;
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        if (!strcmp(tok, "|")) { q->sent[++q->nsent] = n; continue; }
        ck_assert_ok(mn_tagset_add(ts, tok, &q->ids[n++]));
    }
    q->sent[++q->nsent] = n;
}

static mn_tagseq view(const seq *q)
{
    return (mn_tagseq){ q->ids, q->sent, q->nsent };
}

static const char *tags_text(const mn_tagset *ts, const int32_t *ids, const seq *q)
{
    static char buf[4096];
    size_t n = 0;
    buf[0] = 0;
    for (int64_t s = 0; s < q->nsent; s++)
        for (int64_t t = q->sent[s]; t < q->sent[s + 1]; t++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s%s", n ? " " : "", s && t == q->sent[s] ? "| " : "", ts->tags.str[ids[t]]);
    return buf;
}

static const char *spans_text(const mn_tagset *ts, const mn_spans *sp)
{
    static char buf[4096];
    size_t n = 0;
    buf[0] = 0;
    for (int64_t i = 0; i < sp->n; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s %lld %lld", i ? ", " : "", ts->types.str[sp->v[i].type],
                              (long long)sp->v[i].start, (long long)sp->v[i].end);
    return buf;
}

static const char *entities_of(mn_tagset *ts, const char *tags)
{
    seq q;
    mn_spans sp;
    make_seq(ts, tags, &q);
    ck_assert_ok(mn_ner_entities(ts, view(&q), &sp));
    const char *s = spans_text(ts, &sp);
    mn_spans_free(&sp);
    return s;
}

/* ---- the reader ---- */

START_TEST(reader_splits_columns_sentences_and_documents)
{
    const char text[] = "\xEF\xBB\xBF-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects\tVBZ  B-VP O\r\n\n\n \t\n"
                        "-DOCSTART- -X- -X- O\nPeter NNP B-NP B-PER\nM\xC3\xBCller NNP I-NP I-PER";
    mn_conll c;
    ck_assert_ok(mn_conll_parse(text, sizeof text - 1, "t.conll", NULL, &c));
    ck_assert_int_eq(c.ncols, 4);
    ck_assert_int_eq(c.ntok, 4);
    ck_assert_int_eq(c.nsent, 2);
    ck_assert_int_eq(c.sent[1], 2);
    ck_assert_int_eq(c.sent[2], 4);
    ck_assert_str_eq(mn_conll_cell(&c, 1, 0), "rejects");
    ck_assert_str_eq(mn_conll_cell(&c, 1, 2), "B-VP");
    ck_assert_str_eq(mn_conll_cell(&c, 1, -1), "O");               /* the CR is gone */
    ck_assert_str_eq(mn_conll_cell(&c, 3, 0), "M\xC3\xBCller");
    ck_assert_str_eq(mn_conll_cell(&c, 3, -1), "I-PER");           /* no newline at the end of the file */
    ck_assert_int_eq(c.line[0], 3);
    ck_assert_int_eq(c.line[2], 9);
    mn_conll_free(&c);
}
END_TEST

static const struct { const char *text; size_t len; const char *msg; } bad_text[] = {
    { "a O\nb\n", 0, "conll t.conll line 2: 1 column; a token line holds a word and a tag" },
    { "a\nb\n", 0, "conll t.conll line 1: 1 column; a token line holds a word and a tag" },
    { "a x O\n\nb O\n", 0, "conll t.conll line 3: 2 columns, but line 1 has 3" },
    { "a O\n\xff O\n", 0, "conll t.conll line 2: invalid UTF-8 at byte 1" },
    { "a O\nb\xC3( O\n", 0, "line 2: invalid UTF-8 at byte 2" },        /* a lead byte without its continuation */
    { "a O\n\xED\xA0\x80 O\n", 0, "line 2: invalid UTF-8 at byte 1" },  /* a UTF-16 surrogate */
    { "a O\n\xC0\xAF O\n", 0, "line 2: invalid UTF-8 at byte 1" },      /* an overlong '/' */
    { "a O\nx\xF4\x90\x80\x80 O\n", 0, "line 2: invalid UTF-8 at byte 2" }, /* above U+10FFFF */
    { "a O\nb\0c O\n", 10, "conll t.conll line 2: a NUL byte" },
    { "", 0, "conll t.conll: no tokens" },
    { "\n \n\t\n", 0, "conll t.conll: no tokens" },
    { "-DOCSTART- -X- O\n\n", 0, "conll t.conll: no tokens" },
};

START_TEST(reader_rejects_malformed_text_naming_file_and_line)
{
    mn_conll c;
    size_t n = bad_text[_i].len ? bad_text[_i].len : strlen(bad_text[_i].text);
    ck_assert_int_eq(mn_conll_parse(bad_text[_i].text, n, "t.conll", NULL, &c), MN_ERR_FORMAT);
    ck_assert_errmsg_has(bad_text[_i].msg);
    ck_assert_ptr_null(c.text);
    ck_assert_int_eq(c.ntok, 0);
}
END_TEST

START_TEST(reader_enforces_its_limits)
{
    mn_conll c;
    mn_conll_limits lim = { .max_line = 8, .max_cols = 3, .max_bytes = 64 };
    const char *ok = "abcdefgh O\n";     /* 10 bytes: one over */
    ck_assert_int_eq(mn_conll_parse(ok, strlen(ok), "t.conll", &lim, &c), MN_ERR_FORMAT);
    ck_assert_errmsg_has("conll t.conll line 1: longer than 8 bytes");
    const char *cols = "a O\nb c d O\n";
    ck_assert_int_eq(mn_conll_parse(cols, strlen(cols), "t.conll", &lim, &c), MN_ERR_FORMAT);
    ck_assert_errmsg_has("conll t.conll line 2: more than 3 columns");
    char big[100];
    memset(big, 'a', sizeof big);
    big[1] = ' ';
    big[3] = '\n';
    ck_assert_int_eq(mn_conll_read(write_file("big.conll", big, sizeof big), &lim, &c), MN_ERR_IO);
    ck_assert_errmsg_has("big.conll: 100 bytes, more than the limit of 64");
    const char *fits = "abc de f\nd e f\n";    /* 8 bytes, 3 columns: at the bounds */
    ck_assert_ok(mn_conll_read(write_file("fits.conll", fits, strlen(fits)), &lim, &c));
    ck_assert_int_eq(c.ntok, 2);
    mn_conll_free(&c);
}
END_TEST

START_TEST(reader_refuses_what_is_not_a_regular_file)
{
    mn_conll c;
    ck_assert_int_eq(mn_conll_read(dir, NULL, &c), MN_ERR_IO);
    ck_assert_errmsg_has("not a regular file");
    ck_assert_errmsg_has(dir);
    ck_assert_int_eq(mn_conll_read("/dev/zero", NULL, &c), MN_ERR_IO);
    ck_assert_errmsg_has("conll /dev/zero: not a regular file");
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(mn_conll_read(fifo, NULL, &c), MN_ERR_IO);     /* without a writer: must not block */
    ck_assert_errmsg_has("fifo: not a regular file");
    ck_assert_int_eq(mn_conll_read("/nonexistent/x.conll", NULL, &c), MN_ERR_IO);
    ck_assert_errmsg_has("conll /nonexistent/x.conll: No such file");
    const char *bad = "a O\nb O\nc\n";
    ck_assert_int_eq(mn_conll_read(write_file("bad.conll", bad, strlen(bad)), NULL, &c), MN_ERR_FORMAT);
    ck_assert_errmsg_has("bad.conll line 3: 1 column");
}
END_TEST

/* 3,000 corruptions of a valid file (bytes replaced, cut short, lines
 * duplicated): each parses, or fails with a format error naming the file;
 * none crashes (the ASan build checks memory). */
START_TEST(reader_survives_corrupted_files)
{
    static char base[4096], buf[8192];
    FILE *f = fopen(fixture("ner_small.conll"), "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(base, 1, sizeof base, f);
    fclose(f);
    static const char pick[] = { ' ', '\t', '\n', '\r', 0, 'x', '-', (char)0xC3, (char)0xA9, (char)0xFF, (char)0x80 };
    uint64_t rng = 7;
    int ok = 0, bad = 0;
    for (int k = 0; k < 3000; k++) {
        memcpy(buf, base, n);
        size_t len = n;
        for (int e = 0; e < 1 + k % 4; e++) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            size_t at = (size_t)(rng >> 33) % len;
            if (e == 3 && len + 40 < sizeof buf) { memmove(buf + at + 40, buf + at, len - at); len += 40; continue; }
            if (e == 2) { len = at + 1; continue; }
            buf[at] = pick[(rng >> 13) % sizeof pick];
        }
        mn_conll c;
        mn_status s = mn_conll_parse(buf, len, "fuzz.conll", NULL, &c);
        ck_assert_msg(s == MN_OK || s == MN_ERR_FORMAT, "case %d: %s", k, mn_status_name(s));
        if (s) {
            ck_assert_msg(!strncmp(mn_errmsg(), "conll fuzz.conll", 16), "case %d: %s", k, mn_errmsg());
            bad++;
            continue;
        }
        ck_assert_int_ge(c.ncols, 2);
        ck_assert_int_eq(c.sent[c.nsent], c.ntok);
        for (int64_t t = 0; t < c.ntok; t++) ck_assert_ptr_nonnull(mn_conll_cell(&c, t, -1));
        mn_conll_free(&c);
        ok++;
    }
    ck_assert_int_gt(ok, 100);
    ck_assert_int_gt(bad, 100);
}
END_TEST

START_TEST(vocab_orders_by_count_and_maps_unknown_words)
{
    const char *text = "the O\ncat O\nThe O\n\nthe O\ndog O\n";
    mn_conll c;
    ck_assert_ok(mn_conll_parse(text, strlen(text), "v.conll", NULL, &c));
    mn_vocab v;
    ck_assert_ok(mn_vocab_build(&v, &c, (mn_vocab_opts){ 0 }));
    ck_assert_int_eq(v.words.n, 6);
    ck_assert_str_eq(v.words.str[MN_VOCAB_PAD], "<pad>");
    ck_assert_str_eq(v.words.str[MN_VOCAB_UNK], "<unk>");
    ck_assert_str_eq(v.words.str[2], "the");        /* twice */
    ck_assert_str_eq(v.words.str[3], "The");        /* then once each, in byte order */
    ck_assert_str_eq(v.words.str[4], "cat");
    ck_assert_int_eq(mn_vocab_id(&v, "dog"), 5);
    ck_assert_int_eq(mn_vocab_id(&v, "bird"), MN_VOCAB_UNK);
    int32_t ids[5];
    ck_assert_ok(mn_vocab_encode(&v, &c, ids));
    ck_assert_int_eq(ids[2], 3);
    mn_vocab_free(&v);
    ck_assert_ok(mn_vocab_build(&v, &c, (mn_vocab_opts){ .lower = true }));
    ck_assert_int_eq(v.words.n, 5);
    ck_assert_int_eq(v.words.count[2], 3);
    ck_assert_int_eq(mn_vocab_id(&v, "THE"), 2);
    mn_vocab_free(&v);
    ck_assert_ok(mn_vocab_build(&v, &c, (mn_vocab_opts){ .max_size = 3 }));
    ck_assert_int_eq(v.words.n, 3);
    ck_assert_int_eq(mn_vocab_id(&v, "cat"), MN_VOCAB_UNK);
    mn_vocab_free(&v);
    ck_assert_ok(mn_vocab_build(&v, &c, (mn_vocab_opts){ .min_count = 2 }));
    ck_assert_int_eq(v.words.n, 3);
    mn_vocab_free(&v);
    ck_assert_int_eq(mn_vocab_build(&v, &c, (mn_vocab_opts){ .column = 2 }), MN_ERR_INVALID);
    mn_conll_free(&c);
}
END_TEST

START_TEST(tagset_splits_prefix_and_type)
{
    static const struct { const char *tag; char prefix; const char *type; } cases[] = {
        { "B-PER", 'B', "PER" }, { "O", 'O', "_" }, { "B", 'B', "_" }, { "I-", 'I', "_" },
        { "S-LOC", 'S', "LOC" }, { "E-MISC-X", 'E', "MISC-X" }, { "PER", 0, "ER" }, { ".", '.', "_" },
        { "b-per", 0, "per" }, { "\xC3\x89-X", 0, "X" }, { "BX-Y", 'B', "Y" },
    };
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int32_t id;
        ck_assert_ok(mn_tagset_add(&ts, cases[i].tag, &id));
        ck_assert_msg(ts.prefix[id] == cases[i].prefix, "%s: prefix %d", cases[i].tag, ts.prefix[id]);
        ck_assert_str_eq(ts.types.str[ts.type[id]], cases[i].type);
    }
    ck_assert_str_eq(ts.types.str[0], "_");
    mn_tagset_free(&ts);
}
END_TEST

/* ---- entities, by hand: seqeval's reading of each sequence ---- */

static const struct { const char *tags, *spans; } by_hand[] = {
    { "B-PER I-PER O B-LOC", "PER 0 1, LOC 3 3" },
    { "I-PER I-PER O", "PER 0 1" },                          /* I- without B- starts an entity */
    { "O I-PER B-PER", "PER 1 1, PER 2 2" },                 /* IOB1: B- splits adjacent entities */
    { "B-PER I-LOC I-LOC", "PER 0 0, LOC 1 2" },             /* a type change inside a span makes two */
    { "B-PER I-PER I-LOC B-LOC", "PER 0 1, LOC 2 2, LOC 3 3" },
    { "S-PER S-PER B-LOC E-LOC", "PER 0 0, PER 1 1, LOC 2 3" }, /* IOBES singletons */
    { "B-PER S-PER", "PER 0 0, PER 1 1" },                   /* S- after B- closes it */
    { "B-LOC I-LOC E-LOC I-LOC", "LOC 0 2, LOC 3 3" },       /* after E- an I- starts anew */
    { "O E-PER O", "PER 1 1" },                              /* E- without B- */
    { "B-PER E-LOC", "PER 0 0, LOC 1 1" },
    { "S-PER I-PER", "PER 0 0, PER 1 1" },
    { "I-X I-X E-X I-X O", "X 0 2, X 3 3" },                 /* IOE1 */
    { "B-PER I-PER | I-PER O", "PER 0 1, PER 2 2" },         /* a sentence end closes an entity */
    { "B I O B", "_ 0 1, _ 3 3" },                           /* no type: "_" */
    { "PER PER O", "ER 0 1" },                               /* no prefix: the first letter is taken as one */
    { "B-PER . I-PER", "PER 0 0, PER 2 2" },                 /* '.' closes nothing and starts nothing */
    { ". I", "_ 0 1" },                                      /* the span starts where the last one did: token 0 */
    { "B-PER O . I", "PER 0 0, _ 0 3" },                     /* ... even when that overlaps an earlier span */
    { "O O", "" },
};

START_TEST(entities_are_read_as_seqeval_reads_them)
{
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    ck_assert_str_eq(entities_of(&ts, by_hand[_i].tags), by_hand[_i].spans);
    mn_tagset_free(&ts);
}
END_TEST

/* ---- schemes ---- */

START_TEST(schemes_convert_by_hand)
{
    static const char *const iob2 = "B-PER I-PER O B-LOC B-LOC I-LOC | S-X";
    static const char *const want[MN_SCHEME_COUNT] = {
        [MN_SCHEME_IOB1] = "I-PER I-PER O I-LOC B-LOC I-LOC | I-X",
        [MN_SCHEME_IOB2] = "B-PER I-PER O B-LOC B-LOC I-LOC | B-X",
        [MN_SCHEME_IOE1] = "I-PER I-PER O E-LOC I-LOC I-LOC | I-X",
        [MN_SCHEME_IOE2] = "I-PER E-PER O E-LOC I-LOC E-LOC | E-X",
        [MN_SCHEME_IOBES] = "B-PER E-PER O S-LOC B-LOC E-LOC | S-X",
    };
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    seq q;
    make_seq(&ts, iob2, &q);
    for (int s = 0; s < MN_SCHEME_COUNT; s++) {
        int32_t out[16];
        ck_assert_ok(mn_ner_convert(&ts, view(&q), (mn_scheme)s, out));
        ck_assert_msg(!strcmp(tags_text(&ts, out, &q), want[s]), "%s: %s", mn_scheme_name((mn_scheme)s), tags_text(&ts, out, &q));
    }
    /* invalid input is written as seqeval reads it */
    make_seq(&ts, "I-PER I-LOC O E-PER | . I", &q);
    int32_t out[16];
    ck_assert_ok(mn_ner_convert(&ts, view(&q), MN_SCHEME_IOB2, out));
    ck_assert_str_eq(tags_text(&ts, out, &q), "B-PER B-LOC O B-PER | B I");
    /* in place, and the overlapping spans of "B-PER O . I" clipped */
    make_seq(&ts, "B-PER O . I", &q);
    ck_assert_ok(mn_ner_convert(&ts, view(&q), MN_SCHEME_IOBES, q.ids));
    ck_assert_str_eq(tags_text(&ts, q.ids, &q), "S-PER B I E");
    mn_tagset_free(&ts);
}
END_TEST

START_TEST(scheme_violations_and_detection)
{
    static const struct { const char *tags; mn_scheme s; int64_t bad, first; } viol[] = {
        { "O I-PER O B-LOC", MN_SCHEME_IOB2, 1, 1 },
        { "B-PER O", MN_SCHEME_IOB1, 1, 0 },
        { "I-PER B-PER", MN_SCHEME_IOB1, 0, -1 },
        { "O I-PER O", MN_SCHEME_IOE2, 1, 1 },
        { "E-PER O", MN_SCHEME_IOE1, 1, 0 },
        { "B-PER O I-LOC O E-X", MN_SCHEME_IOBES, 3, 0 },
        { "B-PER I-PER E-PER S-X", MN_SCHEME_IOBES, 0, -1 },
        { "O S-PER", MN_SCHEME_IOB2, 1, 1 },                 /* a prefix IOB2 does not use */
        { "B-PER | I-PER", MN_SCHEME_IOB2, 1, 1 },           /* no entity across sentences */
        { "B-PER I-LOC", MN_SCHEME_IOB2, 1, 1 },             /* nor across types */
        { "O .", MN_SCHEME_IOBES, 1, 1 },
    };
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    seq q;
    for (size_t i = 0; i < sizeof viol / sizeof *viol; i++) {
        make_seq(&ts, viol[i].tags, &q);
        int64_t first;
        ck_assert_int_eq(mn_scheme_violations(&ts, view(&q), viol[i].s, &first), viol[i].bad);
        ck_assert_int_eq(first, viol[i].first);
    }
    static const struct { const char *tags; mn_scheme s; } det[] = {
        { "B-PER I-PER O B-LOC", MN_SCHEME_IOB2 },
        { "I-PER I-PER O I-LOC B-LOC", MN_SCHEME_IOB1 },
        { "I-PER I-PER O I-LOC", MN_SCHEME_IOB1 },
        { "I-PER E-PER O E-LOC", MN_SCHEME_IOE2 },
        { "I-PER I-PER O E-LOC I-LOC", MN_SCHEME_IOE1 },
        { "B-PER E-PER S-LOC", MN_SCHEME_IOBES },
        { "B-X I-X I-X E-Y", MN_SCHEME_IOBES },               /* only IOBES has both B- and E-, though IOB2 breaks less */
        { "O O", MN_SCHEME_IOB2 },
    };
    for (size_t i = 0; i < sizeof det / sizeof *det; i++) {
        make_seq(&ts, det[i].tags, &q);
        ck_assert_msg(mn_scheme_detect(&ts, view(&q)) == det[i].s, "%s: %s", det[i].tags, mn_scheme_name(mn_scheme_detect(&ts, view(&q))));
    }
    mn_scheme s;
    ck_assert_ok(mn_scheme_parse("bio", &s));
    ck_assert_int_eq(s, MN_SCHEME_IOB2);
    ck_assert_ok(mn_scheme_parse("IOBES", &s));
    ck_assert_int_eq(s, MN_SCHEME_IOBES);
    ck_assert_ok(mn_scheme_parse("ioe1", &s));
    ck_assert_int_eq(s, MN_SCHEME_IOE1);
    ck_assert_int_eq(mn_scheme_parse("bilou", &s), MN_ERR_INVALID);
    ck_assert_errmsg_has("bilou");
    mn_tagset_free(&ts);
}
END_TEST

/* Random valid entities (many adjacent ones of one type) written in every
 * scheme: each is valid, detected, reads back to the same entities, and
 * converts into every other exactly. */
START_TEST(schemes_round_trip_on_random_entities)
{
    enum { NS = 200 };
    static int64_t sent[NS + 1];
    static int32_t ids[MN_SCHEME_COUNT][NS * 12], conv[NS * 12];
    static const char *const types[] = { "PER", "LOC", "ORG" };
    uint64_t rng = 20;
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    mn_spans sp = { 0 };
    sp.cap = NS * 12;
    sp.v = malloc((size_t)sp.cap * sizeof *sp.v);
    int64_t t = 0;
    for (int s = 0; s < NS; s++) {
        sent[s] = t;
        int64_t end = t + 1 + (int64_t)((rng = rng * 6364136223846793005u + 1442695040888963407u) >> 33) % 11;
        while (t < end) {
            uint64_t r = (rng = rng * 6364136223846793005u + 1442695040888963407u) >> 33;
            int64_t len = 1 + (int64_t)(r % 3);
            if (r % 5 < 2 || t + len > end) { t++; continue; }   /* an O */
            int32_t ty;
            ck_assert_ok(mn_strtab_add(&ts.types, types[(r >> 8) % 2], 0, &ty));
            sp.v[sp.n++] = (mn_span){ t, t + len - 1, ty };
            t += len;
        }
    }
    sent[NS] = t;
    for (int a = 0; a < MN_SCHEME_COUNT; a++) {
        ck_assert_ok(mn_ner_encode(&ts, &sp, sent, NS, (mn_scheme)a, ids[a]));
        mn_tagseq q = { ids[a], sent, NS };
        ck_assert_int_eq(mn_scheme_violations(&ts, q, (mn_scheme)a, NULL), 0);
        ck_assert_msg(mn_scheme_detect(&ts, q) == (mn_scheme)a, "%s detected as %s", mn_scheme_name((mn_scheme)a), mn_scheme_name(mn_scheme_detect(&ts, q)));
        mn_spans back;
        ck_assert_ok(mn_ner_entities(&ts, q, &back));
        ck_assert_int_eq(back.n, sp.n);
        for (int64_t k = 0; k < sp.n; k++) {
            ck_assert_int_eq(back.v[k].start, sp.v[k].start);
            ck_assert_int_eq(back.v[k].end, sp.v[k].end);
            ck_assert_int_eq(back.v[k].type, sp.v[k].type);
        }
        mn_spans_free(&back);
    }
    for (int a = 0; a < MN_SCHEME_COUNT; a++)
        for (int b = 0; b < MN_SCHEME_COUNT; b++) {
            ck_assert_ok(mn_ner_convert(&ts, (mn_tagseq){ ids[a], sent, NS }, (mn_scheme)b, conv));
            ck_assert_msg(!memcmp(conv, ids[b], (size_t)t * sizeof *conv), "%s -> %s", mn_scheme_name((mn_scheme)a), mn_scheme_name((mn_scheme)b));
        }
    mn_spans_free(&sp);
    mn_tagset_free(&ts);
}
END_TEST

/* ---- reports ---- */

static char *print_report(const mn_report *r, int digits)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    mn_report_print(f, r, digits);
    fclose(f);
    return text;
}

static void entity_report(mn_tagset *ts, const char *gold, const char *pred, mn_report *r)
{
    seq g, p;
    make_seq(ts, gold, &g);
    make_seq(ts, pred, &p);
    ck_assert_ok(mn_report_entities(ts, view(&g), view(&p), r));
}

/* seqeval's documented examples (its docstrings) */
START_TEST(report_matches_seqeval_documented_examples)
{
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    mn_report r;
    entity_report(&ts, "O O O B-MISC I-MISC I-MISC O | B-PER I-PER O", "O O B-MISC I-MISC I-MISC I-MISC O | B-PER I-PER O", &r);
    char *text = print_report(&r, 2);
    ck_assert_str_eq(text,
                     "              precision    recall  f1-score   support\n"
                     "\n"
                     "        MISC       0.00      0.00      0.00         1\n"
                     "         PER       1.00      1.00      1.00         1\n"
                     "\n"
                     "   micro avg       0.50      0.50      0.50         2\n"
                     "   macro avg       0.50      0.50      0.50         2\n"
                     "weighted avg       0.50      0.50      0.50         2\n");
    free(text);
    mn_report_free(&r);
    /* f1_score's example: micro 0.6667, macro 0.75, weighted 0.6667, per type 0.5 and 1 */
    entity_report(&ts, "O O B-MISC I-MISC B-MISC O O | B-PER I-PER O", "O O B-MISC I-MISC B-MISC I-MISC O | B-PER I-PER O", &r);
    ck_assert_int_eq(r.n, 2);
    ck_assert_close(r.rows[0].f, 0.5, 1e-12);
    ck_assert_close(r.rows[1].f, 1.0, 1e-12);
    ck_assert_close(r.micro.f, 2.0 / 3.0, 1e-12);
    ck_assert_close(r.macro.f, 0.75, 1e-12);
    ck_assert_close(r.weighted.f, 2.0 / 3.0, 1e-12);
    mn_report_free(&r);
    mn_tagset_free(&ts);
}
END_TEST

/* The tricky cases, counted by hand. Gold: PER 0-1 (I- without B-),
 * LOC 3-3 (an IOBES singleton), ORG 5-5 and MISC 6-7 (a type change
 * inside "B-ORG I-MISC I-MISC"). Predicted: PER 0-1 (from B-PER I-PER:
 * the same span), LOC 3-3 (B-LOC alone), ORG 5-7 (no type change), and
 * PER 9-9 where gold has nothing. */
START_TEST(report_counts_tricky_sequences_by_hand)
{
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    mn_report r;
    entity_report(&ts, "I-PER I-PER O S-LOC O B-ORG I-MISC I-MISC | O O", "B-PER I-PER O B-LOC O B-ORG I-ORG I-ORG | O S-PER", &r);
    ck_assert_int_eq(r.n, 4);
    static const struct { const char *name; int64_t tp, npred, ntrue; double p, rr, f; } want[] = {
        { "LOC", 1, 1, 1, 1.0, 1.0, 1.0 },
        { "MISC", 0, 0, 1, 0.0, 0.0, 0.0 },
        { "ORG", 0, 1, 1, 0.0, 0.0, 0.0 },
        { "PER", 1, 2, 1, 0.5, 1.0, 2.0 / 3.0 },
    };
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(r.rows[i].name, want[i].name);
        ck_assert_int_eq(r.rows[i].tp, want[i].tp);
        ck_assert_int_eq(r.rows[i].npred, want[i].npred);
        ck_assert_int_eq(r.rows[i].ntrue, want[i].ntrue);
        ck_assert_close(r.rows[i].p, want[i].p, 1e-12);
        ck_assert_close(r.rows[i].r, want[i].rr, 1e-12);
        ck_assert_close(r.rows[i].f, want[i].f, 1e-12);
    }
    /* micro: 2 right of 4 predicted and 4 true */
    ck_assert_close(r.micro.p, 0.5, 1e-12);
    ck_assert_close(r.micro.r, 0.5, 1e-12);
    ck_assert_close(r.micro.f, 0.5, 1e-12);
    ck_assert_int_eq(r.micro.ntrue, 4);
    /* macro: means of the four rows */
    ck_assert_close(r.macro.p, 1.5 / 4, 1e-12);
    ck_assert_close(r.macro.r, 2.0 / 4, 1e-12);
    ck_assert_close(r.macro.f, (1.0 + 2.0 / 3.0) / 4, 1e-12);
    /* weighted by support 1, 1, 1, 1 */
    ck_assert_close(r.weighted.p, 1.5 / 4, 1e-12);
    ck_assert_close(r.weighted.f, (1.0 + 2.0 / 3.0) / 4, 1e-12);
    mn_report_free(&r);
    /* a type found only in the prediction has a row (support 0) and counts in the macro average */
    entity_report(&ts, "B-PER O", "B-PER B-DATE", &r);
    ck_assert_int_eq(r.n, 2);
    ck_assert_str_eq(r.rows[0].name, "DATE");
    ck_assert_int_eq(r.rows[0].ntrue, 0);
    ck_assert_close(r.macro.p, 0.5, 1e-12);
    ck_assert_close(r.micro.f, 2.0 / 3.0, 1e-12);
    ck_assert_close(r.weighted.p, 1.0, 1e-12);
    mn_report_free(&r);
    /* no entity anywhere: zeros, not NaN, and the report still prints */
    entity_report(&ts, "O O", "O O", &r);
    ck_assert_int_eq(r.n, 0);
    ck_assert_close(r.micro.f, 0.0, 0);
    ck_assert_close(r.weighted.f, 0.0, 0);
    char *text = print_report(&r, 2);
    ck_assert_ptr_nonnull(strstr(text, "weighted avg       0.00      0.00      0.00         0\n"));
    free(text);
    mn_report_free(&r);
    mn_tagset_free(&ts);
}
END_TEST

START_TEST(token_report_counts_tags)
{
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    seq g, p;
    make_seq(&ts, "B-PER I-PER O O", &g);
    make_seq(&ts, "B-PER O O B-PER", &p);
    mn_report r;
    ck_assert_ok(mn_report_tokens(&ts, view(&g), view(&p), &r));
    /* B-PER: 1 right of 2 predicted, 1 true; I-PER: 0 of 0, 1 true; O: 1 of 2, 2 true */
    ck_assert_int_eq(r.n, 3);
    ck_assert_str_eq(r.rows[0].name, "B-PER");
    ck_assert_close(r.rows[0].p, 0.5, 1e-12);
    ck_assert_close(r.rows[0].r, 1.0, 1e-12);
    ck_assert_close(r.rows[1].f, 0.0, 0);
    ck_assert_close(r.rows[2].p, 0.5, 1e-12);
    ck_assert_close(r.rows[2].r, 0.5, 1e-12);
    ck_assert_int_eq(r.correct, 2);
    char *text = print_report(&r, 2);
    ck_assert_str_eq(text,
                     "              precision    recall  f1-score   support\n"
                     "\n"
                     "       B-PER       0.50      1.00      0.67         1\n"
                     "       I-PER       0.00      0.00      0.00         1\n"
                     "           O       0.50      0.50      0.50         2\n"
                     "\n"
                     "    accuracy                           0.50         4\n"
                     "   macro avg       0.33      0.50      0.39         4\n"
                     "weighted avg       0.38      0.50      0.42         4\n");
    free(text);
    mn_report_free(&r);
    mn_tagset_free(&ts);
}
END_TEST

/* ---- fixtures from the independent Python implementation ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* Tags of column col of c, as ids. */
static void column_ids(mn_tagset *ts, const mn_conll *c, int col, int32_t *ids)
{
    for (int64_t t = 0; t < c->ntok; t++) ck_assert_ok(mn_tagset_add(ts, mn_conll_cell(c, t, col), &ids[t]));
}

START_TEST(python_reference_entities_reports_and_conversions)
{
    mn_conll c, conv;
    ck_assert_ok(mn_conll_read(fixture("ner_random.conll"), NULL, &c));
    ck_assert_int_eq(c.ncols, 3);
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    int32_t *gold = malloc((size_t)c.ntok * sizeof *gold), *pred = malloc((size_t)c.ntok * sizeof *pred), *out = malloc((size_t)c.ntok * sizeof *out);
    column_ids(&ts, &c, 1, gold);
    column_ids(&ts, &c, 2, pred);
    mn_tagseq g = { gold, c.sent, c.nsent }, p = { pred, c.sent, c.nsent };
    /* entities, one per line "TYPE START END" */
    mn_spans sp;
    ck_assert_ok(mn_ner_entities(&ts, g, &sp));
    char *want = slurp(fixture("ner_random.entities"));
    int64_t k = 0;
    for (char *line = strtok(want, "\n"); line; line = strtok(NULL, "\n"), k++) {
        char got[128];
        ck_assert_int_lt(k, sp.n);
        snprintf(got, sizeof got, "%s %lld %lld", ts.types.str[sp.v[k].type], (long long)sp.v[k].start, (long long)sp.v[k].end);
        ck_assert_str_eq(got, line);
    }
    ck_assert_int_eq(k, sp.n);
    mn_spans_free(&sp);
    /* both reports, byte for byte */
    mn_report r;
    ck_assert_ok(mn_report_entities(&ts, g, p, &r));
    char *text = print_report(&r, 4);
    ck_assert_str_eq(text, slurp(fixture("ner_random.entity_report")));
    free(text);
    mn_report_free(&r);
    ck_assert_ok(mn_report_tokens(&ts, g, p, &r));
    text = print_report(&r, 4);
    ck_assert_str_eq(text, slurp(fixture("ner_random.token_report")));
    free(text);
    mn_report_free(&r);
    /* the gold tags in each scheme: columns IOB1 IOB2 IOE1 IOE2 IOBES */
    ck_assert_ok(mn_conll_read(fixture("ner_random.converted.conll"), NULL, &conv));
    ck_assert_int_eq(conv.ntok, c.ntok);
    for (int s = 0; s < MN_SCHEME_COUNT; s++) {
        ck_assert_ok(mn_ner_convert(&ts, g, (mn_scheme)s, out));
        for (int64_t t = 0; t < c.ntok; t++)
            ck_assert_msg(!strcmp(ts.tags.str[out[t]], mn_conll_cell(&conv, t, 1 + s)), "%s token %lld: %s, expected %s",
                          mn_scheme_name((mn_scheme)s), (long long)t, ts.tags.str[out[t]], mn_conll_cell(&conv, t, 1 + s));
    }
    free(gold); free(pred); free(out);
    mn_tagset_free(&ts);
    mn_conll_free(&conv);
    mn_conll_free(&c);
}
END_TEST

/* tests/fixtures/ner_small.conll: CoNLL-2003's layout and scheme (IOB1). */
START_TEST(small_conll_file_reads_detects_converts_and_scores)
{
    mn_conll c;
    ck_assert_ok(mn_conll_read(fixture("ner_small.conll"), NULL, &c));
    ck_assert_int_eq(c.ncols, 4);
    ck_assert_int_eq(c.ntok, 23);
    ck_assert_int_eq(c.nsent, 3);
    ck_assert_str_eq(mn_conll_cell(&c, 0, 0), "Alice");
    ck_assert_str_eq(mn_conll_cell(&c, 8, -1), "B-PER");
    ck_assert_int_eq(c.line[0], 3);
    ck_assert_int_eq(c.line[16], 23);
    const mn_conll *all[] = { &c };
    mn_tagset ts;
    ck_assert_ok(mn_tagset_build(&ts, all, 1));
    ck_assert_int_eq(ts.tags.n, 5);
    ck_assert_str_eq(ts.tags.str[0], "O");
    ck_assert_str_eq(ts.tags.str[1], "B-PER");
    ck_assert_str_eq(ts.tags.str[4], "I-PER");
    int32_t gold[23], iob2[23], pred[23];
    ck_assert_ok(mn_tagset_encode(&ts, &c, false, gold));
    mn_tagseq g = { gold, c.sent, c.nsent };
    ck_assert_int_eq(mn_scheme_detect(&ts, g), MN_SCHEME_IOB1);
    mn_spans sp;
    ck_assert_ok(mn_ner_entities(&ts, g, &sp));
    ck_assert_str_eq(spans_text(&ts, &sp), "PER 0 1, LOC 3 3, LOC 5 5, PER 7 7, PER 8 8, ORG 11 12, LOC 14 14, ORG 17 18");
    mn_spans_free(&sp);
    ck_assert_ok(mn_ner_convert(&ts, g, MN_SCHEME_IOB2, iob2));
    seq q = { .nsent = 3, .sent = { 0, 7, 16, 23 } };
    memcpy(q.ids, iob2, sizeof iob2);
    ck_assert_str_eq(tags_text(&ts, iob2, &q), "B-PER I-PER O B-LOC O B-LOC O | B-PER B-PER O O B-ORG I-ORG O B-LOC O"
                                                " | O B-ORG I-ORG O O O O");
    /* a prediction that joins Bob Anne into one PER and calls Geneva an ORG */
    memcpy(pred, iob2, sizeof pred);
    pred[8] = mn_tagset_find(&ts, "I-PER");
    int32_t borg;
    ck_assert_ok(mn_tagset_add(&ts, "B-ORG", &borg));
    pred[14] = borg;
    mn_report r;
    ck_assert_ok(mn_report_entities(&ts, g, (mn_tagseq){ pred, c.sent, c.nsent }, &r));
    /* LOC: 2 of 2 predicted, 3 true; ORG: 2 of 3, 2 true; PER: 1 of 2, 3 true */
    ck_assert_close(r.rows[0].f, 0.8, 1e-12);
    ck_assert_close(r.rows[1].f, 0.8, 1e-12);
    ck_assert_close(r.rows[2].f, 0.4, 1e-12);
    ck_assert_close(r.micro.p, 5.0 / 7.0, 1e-12);
    ck_assert_close(r.micro.r, 5.0 / 8.0, 1e-12);
    ck_assert_close(r.micro.f, 2.0 / 3.0, 1e-12);
    ck_assert_close(r.macro.p, (1.0 + 2.0 / 3.0 + 0.5) / 3, 1e-12);
    ck_assert_close(r.weighted.p, (3 * 1.0 + 2 * 2.0 / 3.0 + 3 * 0.5) / 8, 1e-12);
    ck_assert_close(r.weighted.f, (3 * 0.8 + 2 * 0.8 + 3 * 0.4) / 8, 1e-12);
    mn_report_free(&r);
    /* a tag set that lacks a tag names the file and line */
    mn_tagset small;
    ck_assert_ok(mn_tagset_init(&small));
    int32_t id;
    ck_assert_ok(mn_tagset_add(&small, "O", &id));
    ck_assert_int_eq(mn_tagset_encode(&small, &c, false, gold), MN_ERR_NOTFOUND);
    ck_assert_errmsg_has("ner_small.conll line 3: tag \"I-PER\"");
    mn_tagset_free(&small);
    mn_tagset_free(&ts);
    mn_conll_free(&c);
}
END_TEST

/* ---- scripts/brown-to-conll.py on a ten-file corpus ---- */

static int run_script(const char *brown, const char *out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/../../scripts/brown-to-conll.py' --brown '%s' --out '%s' >/dev/null 2>&1",
             getenv("MNEMO_FIXTURES") ? getenv("MNEMO_FIXTURES") : "tests/fixtures", brown, out);
    return system(cmd);
}

START_TEST(brown_script_writes_names_and_titles_in_bio)
{
    char brown[512], out[512], path[600];
    snprintf(brown, sizeof brown, "%s/brown", dir);
    snprintf(out, sizeof out, "%s/brown-ner", dir);
    ck_assert_int_eq(mkdir(brown, 0755), 0);
    const char *first = "\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Mayor-nominate/nn-tl Ivan/np "
                        "Allen/np Jr./np of/in Atlanta's/np$ and/cc Jack's/np+bez ,/, Paris/np-hl ./.\n\n";
    for (int i = 1; i <= 10; i++) {
        char name[64], line[128];
        snprintf(name, sizeof name, "brown/ca%02d", i);
        snprintf(line, sizeof line, "\tFile/nn %d/cd ./.\n", i);
        write_file(name, i == 1 ? first : line, strlen(i == 1 ? first : line));
    }
    write_file("brown/README", "not a corpus file\n", 18);
    ck_assert_int_eq(run_script(brown, out), 0);
    mn_conll c;
    snprintf(path, sizeof path, "%s/train.conll", out);
    ck_assert_ok(mn_conll_read(path, NULL, &c));
    ck_assert_int_eq(c.ncols, 2);
    ck_assert_int_eq(c.nsent, 8);          /* files 0..7 of 10 */
    const char *want = "O B-TITLE I-TITLE I-TITLE I-TITLE O B-TITLE B-NAME I-NAME I-NAME O B-NAME O B-NAME O B-NAME O";
    char got[512] = "";
    for (int64_t t = c.sent[0]; t < c.sent[1]; t++) {
        strcat(got, t ? " " : "");
        strcat(got, mn_conll_cell(&c, t, -1));
    }
    ck_assert_str_eq(got, want);
    ck_assert_str_eq(mn_conll_cell(&c, 1, 0), "Fulton");
    mn_conll_free(&c);
    snprintf(path, sizeof path, "%s/dev.conll", out);
    ck_assert_ok(mn_conll_read(path, NULL, &c));
    ck_assert_int_eq(c.nsent, 1);
    ck_assert_str_eq(mn_conll_cell(&c, 1, 0), "9");   /* ca09: file 8 */
    mn_conll_free(&c);
    snprintf(path, sizeof path, "%s/test.conll", out);
    ck_assert_ok(mn_conll_read(path, NULL, &c));
    ck_assert_str_eq(mn_conll_cell(&c, 1, 0), "10");  /* ca10: file 9 */
    mn_conll_free(&c);
    write_file("brown/ca05", "Broken token/nn\n", 16);
    ck_assert_int_ne(run_script(brown, out), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conll");
    TCase *tc = tcase_create("conll");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, reader_splits_columns_sentences_and_documents);
    tcase_add_loop_test(tc, reader_rejects_malformed_text_naming_file_and_line, 0, (int)(sizeof bad_text / sizeof *bad_text));
    tcase_add_test(tc, reader_enforces_its_limits);
    tcase_add_test(tc, reader_refuses_what_is_not_a_regular_file);
    tcase_add_test(tc, reader_survives_corrupted_files);
    tcase_add_test(tc, vocab_orders_by_count_and_maps_unknown_words);
    tcase_add_test(tc, tagset_splits_prefix_and_type);
    tcase_add_loop_test(tc, entities_are_read_as_seqeval_reads_them, 0, (int)(sizeof by_hand / sizeof *by_hand));
    tcase_add_test(tc, schemes_convert_by_hand);
    tcase_add_test(tc, scheme_violations_and_detection);
    tcase_add_test(tc, schemes_round_trip_on_random_entities);
    tcase_add_test(tc, report_matches_seqeval_documented_examples);
    tcase_add_test(tc, report_counts_tricky_sequences_by_hand);
    tcase_add_test(tc, token_report_counts_tags);
    tcase_add_test(tc, python_reference_entities_reports_and_conversions);
    tcase_add_test(tc, small_conll_file_reads_detects_converts_and_scores);
    tcase_add_test(tc, brown_script_writes_names_and_titles_in_bio);
    suite_add_tcase(s, tc);
    return mn_test_run_in_tmpdir(s, dir, sizeof dir, "mnemo-conll");
}
