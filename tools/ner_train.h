/* tools/ner_train.h: what `mnemo train --model ner` reads and feeds: CoNLL
 * splits as word, character and tag ids (tags converted to IOB2 or IOBES), pieces of
 * at most T tokens grouped in length buckets, batches of them, the scheme's
 * transition constraints and pre-trained word vectors (ner_data.c). */
#ifndef MN_TOOLS_NER_TRAIN_H
#define MN_TOOLS_NER_TRAIN_H

#include "ner.h"

/* Character ids: 0 padding, 1 start of word, 2 end of word, byte + 3. */
enum { MN_NER_CHARS = 259 };

/* One split: the file, its word ids and its tags (ids of the shared tag set). */
typedef struct {
    mn_conll c;
    int32_t *words, *tags;
    int64_t nsent;          /* sentences used (--limit), at most c.nsent */
    int64_t ntok;           /* tokens of those sentences */
} mn_ner_split;

/* A piece of a sentence: tokens start .. start + len - 1 (indices into the split). */
typedef struct { int64_t start; int32_t len, bucket; } mn_ner_piece;

typedef struct {
    mn_ner_piece *v;
    int64_t n;
    int nbuckets;
    int32_t bucket_T[16];   /* steps of each bucket, rising; the last is the longest piece allowed */
} mn_ner_pieces;

/* Reads path into s (the first `limit` sentences are used; 0: all), then
 * the ids: words by v, tags by ts (every tag must be in ts). Messages name
 * the file and line. */
mn_status mn_ner_split_read(mn_ner_split *s, const char *path, int64_t limit);
mn_status mn_ner_split_encode(mn_ner_split *s, const mn_vocab *v, mn_tagset *ts);
void      mn_ner_split_free(mn_ner_split *s);
/* Cuts the split's sentences into pieces of at most max_T tokens, each in
 * the smallest bucket (8, 16, 32, ... and max_T) that holds it. */
mn_status mn_ner_pieces_make(const mn_ner_split *s, int max_T, mn_ner_pieces *p);
void      mn_ner_pieces_free(mn_ner_pieces *p);

/* Fills words [T, B], chars [T * B, W], tags [T, B] (-100 on padding) and
 * lengths [B] for the pieces idx[0..B-1] (-1: an empty slot). */
void mn_ner_fill(const mn_ner_split *s, const mn_ner_pieces *p, const int64_t *idx, int B, int T, int W, int32_t *words,
                 int32_t *chars, int32_t *tags, int32_t *lengths);

/* [K + 2, K] scores added to the CRF's transitions: 0 where the move is
 * allowed, -10000 where not. IOB2: I-X only after B-X or I-X (so never
 * first), tags of prefixes other than O, B, I never. IOBES: after B-X or
 * I-X only I-X or E-X; after O, E-Y, S-Y or at the start only O, B-X or
 * S-X; the last tag O, E-X or S-X; other prefixes never. Other schemes:
 * MN_ERR_INVALID. */
mn_status mn_ner_constraints(const mn_tagset *ts, mn_scheme s, float *out);

/* Word vectors in word2vec/GloVe text format ("word v1 ... vd" per line; a
 * first line of two integers is a header). *dim gets d. */
mn_status mn_ner_vectors_dim(const char *path, int64_t *dim);
/* Copies the vector of each vocabulary word found (exactly, or else by its
 * lower-case form) into emb [V, d]; other rows are left as they are. */
mn_status mn_ner_vectors_load(const char *path, const mn_vocab *v, float *emb, int64_t d, int64_t *exact, int64_t *lower);

/* --init-from (ner_init.c): copies the tensors src shares with the tagger
 * in P (built, not compiled), renamed by the rules `map` (NULL: names as
 * they are); rows of words, characters and tags matched by what they
 * stand for. All or nothing. Prints the report and records the origin
 * (mnemo.init_from); MN_ERR_* naming the file on failure, with *bad_map
 * set when the map is at fault (a bad rule, two names renamed to one). */
typedef struct {
    const char *path, *map_path, *map;   /* --init-from, --init-map and its text */
    const mn_strtab *words;              /* the run's words */
    const char *tags_json;               /* the run's tags as mnemo.ner.tags holds them */
} mn_ner_init;
mn_status mn_ner_init_from(mn_params *P, const mn_params *src, const mn_ner_init *in, bool *bad_map);

#endif
