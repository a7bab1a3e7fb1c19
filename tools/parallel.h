/* tools/parallel.h: verse-aligned parallel text for translation. Reads two
 * SWORD module dumps (`mod2imp`, OSIS markup) or two aligned plain text
 * files (one sentence per line) into pairs of clean UTF-8 strings, each
 * with a key and a split (train / valid / test) that depends on the key
 * only, so the split never changes when the files grow or reorder. */
#ifndef MN_TOOLS_PARALLEL_H
#define MN_TOOLS_PARALLEL_H

#include "mnemo.h"

typedef enum { MN_SPLIT_TRAIN = 0, MN_SPLIT_VALID = 1, MN_SPLIT_TEST = 2 } mn_split_kind;

typedef struct {
    char *key;         /* "Genesis 1:1" (dump) or "17" (1-based line of a text file) */
    char *src, *tgt;   /* stripped, whitespace-normalised, valid UTF-8, non-empty */
    mn_split_kind split;
} mn_pair;

typedef struct {
    mn_pair *pairs;    /* in the source file's order */
    int64_t n;
    int64_t count[3];  /* pairs per split */
} mn_parallel;

/* Largest input file and longest line accepted (bytes). */
#define MN_PARALLEL_MAX_FILE (1ll << 30)
#define MN_PARALLEL_MAX_LINE (1 << 20)
/* One key in MN_SPLIT_MOD goes to validation, one to test (see mn_split_of). */
#define MN_SPLIT_MOD 50

/* Reads two files: both `mod2imp` dumps (first line starts with "$$$") or
 * both plain text with the same number of lines. Entries missing or empty
 * on either side are skipped, as are headings (`X 0:0`, `X N:0`, `[ ... ]`).
 * MN_ERR_IO (cannot read), MN_ERR_FORMAT with "file:line: what" (invalid
 * UTF-8, NUL byte, unterminated tag, duplicate key, bad key, line too long,
 * line counts differ, no pairs). */
mn_status mn_parallel_read(const char *src_path, const char *tgt_path, mn_parallel *out);
void      mn_parallel_free(mn_parallel *p);

/* The split of a key: h = FNV-1a 64 of its bytes, mixed by the splitmix64
 * finaliser; h % 50 == 0 -> valid, h % 50 == 1 -> test, else train. */
mn_split_kind mn_split_of(const char *key);

/* Strips OSIS markup from n bytes into out (capacity >= n + 1, NUL-ended):
 * tags go (inline ones such as <w>, <transChange>, <divineName>, <q>, <seg>,
 * <foreign> leave nothing, block ones such as <div/>, <l/>, <lb/>, <title>
 * leave a space); <note>...</note> goes with its content; the five XML
 * entities are decoded; USFM leftovers (`\nd `, `\+nd*`) and the pilcrow
 * go; whitespace runs become one space, trimmed. *why names the problem on
 * MN_ERR_FORMAT (unterminated tag or note). */
mn_status mn_osis_strip(const char *in, size_t n, char *out, size_t *out_len, const char **why);

/* Whitespace-only normalisation for plain text (same output rules). */
size_t    mn_text_normalise(const char *in, size_t n, char *out);

/* Length of the valid UTF-8 prefix of s (== n if all valid; no overlongs,
 * no surrogates, at most U+10FFFF). */
size_t    mn_utf8_valid_prefix(const char *s, size_t n);

#endif
