/* models/blocks.h: pieces of a Transformer block shared by the encoder-only
 * models (transformer.c, which defines them) and the encoder-decoder
 * (seq2seq.c): sub-layers named PREFIX.NAME, the block's dropout and its
 * feed-forward network, with PyTorch's names. Internal to models/. */
#ifndef MN_MODELS_BLOCKS_H
#define MN_MODELS_BLOCKS_H

#include "mnemo.h"

mn_node *mn__sub_linear(mn_graph *g, const char *prefix, const char *name, mn_node *x, int64_t out);
mn_node *mn__sub_norm(mn_graph *g, const char *prefix, const char *name, mn_node *x);
mn_node *mn__block_drop(mn_graph *g, mn_node *x, const mn_block_opts *o);
mn_node *mn__block_ff(mn_graph *g, const char *prefix, mn_node *x, const mn_block_opts *o);

#endif
