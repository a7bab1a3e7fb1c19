/* bench/infer.h: the inference-latency workloads of `mnemo bench --infer`:
 * batch 1, one token at a time, through a forward-only executable compiled
 * once (its arena reused; a token allocates nothing). */
#ifndef MN_BENCH_INFER_H
#define MN_BENCH_INFER_H

#include "mnemo.h"

#define MN_INFER_MAX_LAYERS 8

typedef struct {
    const char *name;
    mn_params *P;
    mn_graph *g;
    mn_exec *ex;
    mn_node *logits, *h, *c;   /* logits of the newest token; the LSTM's state out */
    int64_t vocab, context;    /* context: positions the step sees (1 for the LSTM, the cache slots for the transformer) */
    bool cached;               /* the transformer: a key/value cache per layer */
    int64_t pos;               /* ... the position of the next token */
    mn_node *ck[MN_INFER_MAX_LAYERS], *cv[MN_INFER_MAX_LAYERS];   /* ... cache inputs */
    mn_node *nk[MN_INFER_MAX_LAYERS], *nv[MN_INFER_MAX_LAYERS];   /* ... each step's new keys and values */
} mn_infer;

/* "lstm_lm", "transformer_lm"; NULL-terminated. */
extern const char *const mn_infer_names[];
/* Builds `name` with seeded weights and compiles its one-token executable
 * with opts (outputs are set here); MN_ERR_NOTFOUND if unknown. */
mn_status mn_infer_build(const char *name, const mn_compile_opts *opts, mn_infer *m);
/* Back to the start: the LSTM's state zero, the transformer at position 0
 * (an empty cache). */
void mn_infer_reset(mn_infer *m);
/* One token in, the next token's logits out (mn_infer_logits). */
mn_status mn_infer_step(mn_infer *m, int32_t token);
const float *mn_infer_logits(const mn_infer *m);
void mn_infer_free(mn_infer *m);

#endif
