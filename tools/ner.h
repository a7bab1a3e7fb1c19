/* tools/ner.h: named-entity tags. The tag vocabulary (each tag split into
 * its prefix and entity type once), the tag schemes IOB1, IOB2 (BIO),
 * IOE1, IOE2 and IOBES, entity extraction as seqeval's default
 * (conlleval-compatible) mode reads tags, scheme detection and conversion,
 * and the entity- and token-level reports. docs/formats.md has the rules. */
#ifndef MN_TOOLS_NER_H
#define MN_TOOLS_NER_H

#include "conll.h"
#include <stdio.h>

/* ---- tag vocabulary ---- */

/* A tag's prefix is its first character when that is O, B, I, E, S or '.';
 * any other first character is prefix 0 ("other"). Its type is the text
 * after the first character: from after its first '-' if it has one, the
 * whole rest otherwise; "_" if that is empty ("B-PER" -> B, PER; "O" -> O, _;
 * "B" -> B, _; "PER" -> 0, ER). Type id 0 is always "_". */
typedef struct {
    mn_strtab tags;     /* id -> tag string */
    char *prefix;       /* per tag */
    int32_t *type;      /* per tag: id in types */
    int32_t cap;
    mn_strtab types;    /* entity types */
} mn_tagset;

mn_status mn_tagset_init(mn_tagset *ts);
/* The id of tag (added if absent). */
mn_status mn_tagset_add(mn_tagset *ts, const char *tag, int32_t *id);
/* The id of tag, or -1. */
int32_t   mn_tagset_find(const mn_tagset *ts, const char *tag);
/* A fresh tag set of every tag in the corpora: "O" first (even if absent),
 * then the others in byte order, so ids do not depend on file order. */
mn_status mn_tagset_build(mn_tagset *ts, const mn_conll *const *corpora, int n);
/* ids[t] = the id of token t's tag (last column). With add, unseen tags
 * are added; without, an unseen tag is MN_ERR_NOTFOUND naming file and line. */
mn_status mn_tagset_encode(mn_tagset *ts, const mn_conll *c, bool add, int32_t *ids);
void      mn_tagset_free(mn_tagset *ts);

/* ---- a tagged corpus view: sentence s is ids[sent[s] .. sent[s+1]-1];
 * the ids are ids of the tag set passed with it (mn_ner_entities and the
 * reports check them, MN_ERR_INVALID; the scheme functions trust them) ---- */
typedef struct {
    const int32_t *ids;
    const int64_t *sent;
    int64_t nsent;
} mn_tagseq;

/* ---- schemes ---- */
typedef enum { MN_SCHEME_IOB1, MN_SCHEME_IOB2, MN_SCHEME_IOE1, MN_SCHEME_IOE2, MN_SCHEME_IOBES, MN_SCHEME_COUNT } mn_scheme;

const char *mn_scheme_name(mn_scheme s);            /* "IOB2" */
/* Case-insensitive: iob1, iob2 (or bio), ioe1, ioe2, iobes (or bioes). */
mn_status   mn_scheme_parse(const char *name, mn_scheme *out);
/* Tokens that break scheme s: a prefix it does not use ('.', other, E or S
 * in IOB, ...), I-X not after B-X/I-X (IOB2), B-X not after B-X/I-X (IOB1),
 * I-X not before I-X/E-X (IOE2), E-X not before I-X/E-X (IOE1), and in
 * IOBES B-X not before I-X/E-X, E-X not after B-X/I-X, I-X not between
 * them. *first gets the first such token (or -1) when first is not NULL. */
int64_t     mn_scheme_violations(const mn_tagset *ts, mn_tagseq q, mn_scheme s, int64_t *first);
/* The scheme the tags follow: among the schemes that use every prefix that
 * occurs, the one with the fewest violations; ties go to IOB2, IOB1,
 * IOE2, IOE1, IOBES in that order (tags of only I- and O are IOB1). */
mn_scheme   mn_scheme_detect(const mn_tagset *ts, mn_tagseq q);

/* ---- entities ---- */

/* An entity: tokens start..end (inclusive, indices into the whole tag
 * array) of entity type `type` (an id in the tag set's types). */
typedef struct { int64_t start, end; int32_t type; } mn_span;
typedef struct { mn_span *v; int64_t n, cap; } mn_spans;

/* The entities exactly as seqeval's default mode reads them (get_entities
 * on the sentences, each followed by an O): any scheme, invalid sequences
 * included. Spans come in order of their end, and ends are distinct. */
mn_status mn_ner_entities(const mn_tagset *ts, mn_tagseq q, mn_spans *out);
/* Writes the spans as tags of scheme s into ids (one per token, O
 * elsewhere), adding the tags it needs to ts ("B-PER"; type "_" gives the
 * bare prefix "B"). A span is clipped to its end's sentence and to after
 * the span before it (only overlapping or cross-sentence spans, which
 * seqeval can read from malformed tags, are changed by that). */
mn_status mn_ner_encode(mn_tagset *ts, const mn_spans *sp, const int64_t *sent, int64_t nsent, mn_scheme s, int32_t *ids);
/* Reads q's entities and writes them in scheme `to` (out may equal q.ids). */
mn_status mn_ner_convert(mn_tagset *ts, mn_tagseq q, mn_scheme to, int32_t *out);
void      mn_spans_free(mn_spans *sp);

/* ---- reports: per label precision, recall, F1 and support ---- */
typedef struct {
    const char *name;           /* an entity type or a tag, owned by the tag set */
    int64_t tp, npred, ntrue;   /* ntrue is the support */
    double p, r, f;
} mn_prf;

typedef struct {
    bool tokens;        /* token-level (sklearn layout) or entity-level (seqeval) */
    mn_prf *rows;       /* per label, in byte order of the names */
    int n;
    mn_prf micro;       /* entity: micro avg; token: accuracy (f) */
    mn_prf macro, weighted;
    int64_t ntok, correct;
} mn_report;

/* seqeval's default classification_report: a row per entity type found in
 * gold or prediction; precision tp/npred, recall tp/ntrue, F1 2pr/(p+r),
 * each 0 when undefined; micro from the summed counts; macro the mean of
 * the rows; weighted the mean by support (0 when no support). gold and
 * pred share sentences (pred.sent and pred.nsent are not read). */
mn_status mn_report_entities(const mn_tagset *ts, mn_tagseq gold, mn_tagseq pred, mn_report *r);
/* The token-level report (scikit-learn's classification_report over the
 * tags that occur in gold or prediction, with accuracy). */
mn_status mn_report_tokens(const mn_tagset *ts, mn_tagseq gold, mn_tagseq pred, mn_report *r);
/* Prints r in seqeval's / scikit-learn's layout with `digits` decimals
 * (as print(classification_report(...)) without the final blank line). */
void      mn_report_print(FILE *f, const mn_report *r, int digits);
void      mn_report_free(mn_report *r);

#endif
