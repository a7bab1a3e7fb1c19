/* bench/infer.h: the inference-latency workloads of `mnemo bench --infer`:
 * batch 1, one token at a time, through a forward-only executable compiled
 * once (its arena reused; a token allocates nothing). */
#ifndef MN_BENCH_INFER_H
#define MN_BENCH_INFER_H

#include "mnemo.h"

typedef struct {
    const char *name;
    mn_params *P;
    mn_graph *g;
    mn_exec *ex;
    mn_node *logits, *h, *c;   /* logits of the newest token; the LSTM's state out */
    int64_t vocab, context;    /* context: tokens the executable reads per step (1 for the LSTM) */
    int32_t *window;           /* the transformer's last `context` tokens */
} mn_infer;

/* "lstm_lm", "transformer_lm"; NULL-terminated. */
extern const char *const mn_infer_names[];
/* Builds `name` with seeded weights and compiles its one-token executable
 * with opts (outputs are set here); MN_ERR_NOTFOUND if unknown. */
mn_status mn_infer_build(const char *name, const mn_compile_opts *opts, mn_infer *m);
/* Back to the start: the LSTM's state zero, the transformer's window the
 * fixed tokens (7 i + 3) mod vocab. */
void mn_infer_reset(mn_infer *m);
/* One token in, the next token's logits out (mn_infer_logits). */
mn_status mn_infer_step(mn_infer *m, int32_t token);
const float *mn_infer_logits(const mn_infer *m);
void mn_infer_free(mn_infer *m);

#endif
