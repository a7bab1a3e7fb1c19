/* tools/bleu.h: corpus BLEU and chrF as sacreBLEU 2.x computes them by
 * default, one reference per segment. BLEU: 13a tokenisation, mixed case,
 * 1- to 4-grams clipped by the reference, corpus sums, brevity penalty,
 * 'exp' smoothing of zero-match orders; chrF: character 1- to 6-grams with
 * whitespace removed, beta 2, averaged over the orders seen. Scores are on
 * sacreBLEU's 0-100 scale. */
#ifndef MN_TOOLS_BLEU_H
#define MN_TOOLS_BLEU_H

#include "mnemo.h"

#define MN_BLEU_ORDER 4
#define MN_CHRF_ORDER 6
#define MN_CHRF_BETA 2.0

/* Sufficient statistics, summed over segments. */
typedef struct {
    int64_t hyp_len, ref_len;
    int64_t correct[MN_BLEU_ORDER], total[MN_BLEU_ORDER];
} mn_bleu_stats;

typedef struct {
    double score;                       /* 0..100 */
    double precision[MN_BLEU_ORDER];    /* 0..100, after smoothing */
    double bp;                          /* brevity penalty */
    int64_t hyp_len, ref_len;
} mn_bleu;

typedef struct { int64_t hyp[MN_CHRF_ORDER], ref[MN_CHRF_ORDER], match[MN_CHRF_ORDER]; } mn_chrf_stats;

/* mteval-v13a tokenisation as sacreBLEU's "13a" (after its rstrip): a
 * malloc'd string of tokens separated by single spaces. */
mn_status mn_tok13a(const char *s, size_t n, char **out);

/* Adds one segment. tokenize: true applies 13a, false splits on
 * whitespace only (sacreBLEU's tokenize="none", pre-tokenised input).
 * MN_ERR_INVALID for invalid UTF-8 (sacreBLEU reads UTF-8 text). */
mn_status mn_bleu_add(mn_bleu_stats *st, const char *hyp, const char *ref, bool tokenize);
mn_bleu   mn_bleu_score(const mn_bleu_stats *st);
/* Both in one call over n segments. */
mn_status mn_corpus_bleu(const char *const *hyps, const char *const *refs, int64_t n, bool tokenize, mn_bleu *out);

mn_status mn_chrf_add(mn_chrf_stats *st, const char *hyp, const char *ref);
/* F-beta over the averaged precision and recall (sacreBLEU: beta 2). */
double    mn_chrf_score(const mn_chrf_stats *st, double beta);
/* With beta MN_CHRF_BETA. */
mn_status mn_corpus_chrf(const char *const *hyps, const char *const *refs, int64_t n, double *score);

#endif
