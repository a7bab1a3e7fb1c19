/* models/blocks.h: pieces of a Transformer block shared by the encoder-only
 * models (transformer.c, which defines them) and the encoder-decoder
 * (seq2seq.c) and the cached decoding steps (lm_step.c): sub-layers named PREFIX.NAME, the block's dropout and its
 * feed-forward network, with PyTorch's names. Internal to models/. */
#ifndef MN_MODELS_BLOCKS_H
#define MN_MODELS_BLOCKS_H

#include "mnemo.h"

/* layers.c: the blocks of steps [cut[b], cut[b + 1]) of time-major
 * outputs of batch B (the count; cut has room for T + 1): rnn.c stacks its
 * outputs so, mn_linear_steps reads them so. */
int mn__step_cuts(int64_t T, int64_t B, int64_t *cut);
mn_node *mn__sub_linear(mn_graph *g, const char *prefix, const char *name, mn_node *x, int64_t out);
mn_node *mn__sub_norm(mn_graph *g, const char *prefix, const char *name, mn_node *x);
mn_node *mn__block_drop(mn_graph *g, mn_node *x, const mn_block_opts *o);
mn_node *mn__block_ff(mn_graph *g, const char *prefix, mn_node *x, const mn_block_opts *o);
/* transformer.c: the sinusoidal position table [T, E]; the LM's final norm
 * (pre-LN) and head, tied to prefix.tok_emb when o->tie_weights. */
mn_node *mn__sinusoid(mn_graph *g, int64_t T, int64_t E);
mn_node *mn__lm_head(mn_graph *g, const char *prefix, mn_node *x, const mn_lm_opts *o);
/* lm_step.c: incremental decoding with a key/value cache (shared by the
 * LM's step and the encoder-decoder's): the additive mask [1, 1, 1, L + 1]
 * of L cache slots (slots >= pos hidden) and the new slot; self-attention
 * of x [N, 1, E] over the caches [N, H, L, E/H] and its own new keys and
 * values (returned). */
mn_node *mn__cache_mask(mn_graph *g, mn_node *pos, int64_t L);
mn_node *mn__self_attn_cached(mn_graph *g, const char *name, mn_node *x, int64_t E, int64_t heads, mn_node *mask,
                              mn_node *cache_k, mn_node *cache_v, mn_node **new_k, mn_node **new_v);

#endif
