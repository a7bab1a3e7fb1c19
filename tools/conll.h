/* tools/conll.h: token-per-line data in the CoNLL column format (named
 * entities, CoNLL-2003 and files written like it), an interned string
 * table, and the word vocabulary of the taggers. A corpus owns one buffer
 * holding every string; memory is bounded by the limits below. */
#ifndef MN_TOOLS_CONLL_H
#define MN_TOOLS_CONLL_H

#include "mnemo.h"
#include <stdint.h>

/* Bounds on what a read accepts; zero fields take the defaults. */
typedef struct {
    int64_t max_bytes;  /* largest file, default 512 MiB (at most 4 GiB - 2) */
    int max_line;       /* longest line in bytes without its newline, default 65,536 */
    int max_cols;       /* most columns on a token line, default 64 */
} mn_conll_limits;

/* ntok tokens of ncols columns each; the last column is the tag, the first
 * the word, those between are optional features. Sentence s is tokens
 * sent[s] .. sent[s + 1] - 1 (sent has nsent + 1 entries). */
typedef struct {
    char *text;         /* the file's bytes, separators turned into NULs */
    uint32_t *cell;     /* ntok x ncols offsets into text */
    uint32_t *line;     /* ntok line numbers (from 1), for messages */
    int64_t *sent;
    int64_t ntok, nsent;
    int ncols;
    char path[512];     /* the name messages use */
} mn_conll;

/* Reads a regular file (a directory, a device or a FIFO is refused) of at
 * most max_bytes. Blank lines (spaces, tabs) end a sentence; a line whose
 * first column is -DOCSTART- ends one and is skipped; columns are split on
 * spaces and tabs; a trailing CR and a leading UTF-8 byte-order mark are
 * dropped. MN_ERR_IO (cannot open or read, not a regular file, too large)
 * or MN_ERR_FORMAT ("FILE line N: ..." for a NUL byte, invalid UTF-8, a
 * line over max_line, fewer than 2 or more than max_cols columns, a column
 * count that differs from the first token line's; no tokens at all);
 * MN_ERR_NOMEM. On failure *out is empty. lim may be NULL. */
mn_status mn_conll_read(const char *path, const mn_conll_limits *lim, mn_conll *out);
/* The same on bytes in memory; name is used in messages. */
mn_status mn_conll_parse(const char *buf, size_t len, const char *name, const mn_conll_limits *lim, mn_conll *out);
/* Column col of token t; col < 0 counts from the end (-1 is the tag). */
const char *mn_conll_cell(const mn_conll *c, int64_t t, int col);
void mn_conll_free(mn_conll *c);

/* ---- interned strings: id <-> string, with a count per string ---- */
typedef struct {
    char **str;         /* id -> string (owned) */
    int64_t *count;
    int32_t n, cap;
    int32_t *slot;      /* open addressing: id + 1, 0 = empty */
    uint32_t nslot;     /* a power of two, at least twice n */
} mn_strtab;

/* The id of s, or -1. */
int32_t   mn_strtab_find(const mn_strtab *t, const char *s);
/* Adds s if absent; *id gets its id; adds `count` to its count. */
mn_status mn_strtab_add(mn_strtab *t, const char *s, int64_t count, int32_t *id);
void      mn_strtab_free(mn_strtab *t);

/* ---- word vocabulary: id 0 is padding, id 1 the unknown word ---- */
#define MN_VOCAB_PAD 0
#define MN_VOCAB_UNK 1
typedef struct {
    int column;         /* column to read (0: the word) */
    int max_size;       /* most ids including pad and unknown; 0: no bound */
    int min_count;      /* rarer words map to the unknown id; 0 or 1: keep all */
    bool lower;         /* fold ASCII letters to lower case */
} mn_vocab_opts;

typedef struct {
    mn_strtab words;    /* id -> word; "<pad>" and "<unk>" first */
    mn_vocab_opts opts;
} mn_vocab;

/* Words of the corpus by falling count, ties in byte order. */
mn_status mn_vocab_build(mn_vocab *v, const mn_conll *train, mn_vocab_opts o);
/* The id of a word (folded if the vocabulary is), MN_VOCAB_UNK if absent. */
int32_t   mn_vocab_id(const mn_vocab *v, const char *word);
/* ids[t] for every token of c, read from the vocabulary's column. */
mn_status mn_vocab_encode(const mn_vocab *v, const mn_conll *c, int32_t *ids);
void      mn_vocab_free(mn_vocab *v);

#endif
