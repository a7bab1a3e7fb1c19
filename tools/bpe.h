/* tools/bpe.h: byte-pair encoding (Sennrich et al. 2016) over bytes, for
 * the translation data. Learned from a set of strings, stored as JSON in a
 * checkpoint's metadata, loaded back with full validation. encode then
 * decode gives back the exact input bytes, for any input.
 *
 * Ids: 0 <pad>, 1 <s>, 2 </s>, 3 + b for byte b (3..258), then one id per
 * merge in learning order (merge i makes id 259 + i). */
#ifndef MN_TOOLS_BPE_H
#define MN_TOOLS_BPE_H

#include "mnemo.h"

typedef struct mn_bpe mn_bpe;

enum { MN_BPE_PAD = 0, MN_BPE_BOS = 1, MN_BPE_EOS = 2, MN_BPE_BYTE0 = 3, MN_BPE_FIRST_MERGE = 259 };
#define MN_BPE_MAX_CHUNK  256        /* bytes per pre-token, so per token */
#define MN_BPE_MAX_MERGES (1 << 20)
#define MN_BPE_MAX_JSON   (64 << 20) /* bytes of a stored BPE */
#define MN_BPE_MAX_BYTES  (16 << 20) /* bytes of all tokens together */

/* Learns merges until the vocabulary (specials + bytes + merges) has
 * vocab_size ids or no pair occurs twice. Texts are split into pre-tokens
 * (see docs/formats.md): merges never cross them. Each step merges the
 * most frequent adjacent pair; ties go to the smaller left id, then the
 * smaller right id. MN_ERR_INVALID if vocab_size < 259 or > 259 + 2^20. */
mn_status mn_bpe_learn(const char *const *texts, int64_t n, int vocab_size, mn_bpe **out);
void      mn_bpe_free(mn_bpe *b);

int mn_bpe_vocab(const mn_bpe *b);     /* 259 + merges */
int mn_bpe_merges(const mn_bpe *b);
/* The bytes of token id (NULL and 0 for specials or ids out of range). */
const char *mn_bpe_token(const mn_bpe *b, int32_t id, size_t *len);

/* Encodes n bytes into ids (cap >= n always suffices: at most one id per
 * byte). No <s> or </s> is added. MN_ERR_INVALID if cap is too small. */
mn_status mn_bpe_encode(const mn_bpe *b, const char *s, size_t n, int32_t *ids, int64_t cap, int64_t *n_ids);
/* Decodes ids into out (capacity cap, NUL-terminated, *len without the
 * NUL); specials give nothing. MN_ERR_INVALID for an id outside the
 * vocabulary or too small a buffer. */
mn_status mn_bpe_decode(const mn_bpe *b, const int32_t *ids, int64_t n, char *out, size_t cap, size_t *len);

/* JSON text {"format": "mnemo-bpe", "version": 1, ...} (malloc'd; free it). */
mn_status mn_bpe_to_json(const mn_bpe *b, char **json);
/* Parses and validates a stored BPE; anything malformed or hostile is
 * refused with MN_ERR_FORMAT and a message naming the field. */
mn_status mn_bpe_from_json(const char *json, mn_bpe **out);

#endif
