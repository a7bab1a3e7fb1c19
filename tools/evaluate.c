/* tools/evaluate.c: what train's validation and `mnemo eval` share: the
 * model of a config compiled for any batch size on one store (mn_rebatch),
 * and a pass over the first N items of the evaluated split in batches of
 * --batch, the last batch holding the rest, so every item counts. Losses
 * are means over targets (cross-entropy: non-ignored tokens, labels) or
 * over images (the VAE), weighted by each batch's count. */
#include "train.h"
#include "env.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static mn_model_nodes build(mn_graph *g, int64_t batch, void *ctx)
{
    mn_model_ctx *mc = ctx;
    mn_train_cfg c = mc->c;
    c.batch = (int)batch;
    mn_model_graph m = mn_model_build(g, &c, mc->vocab, false);
    mn_model_nodes n = { .loss = m.loss };
    if (m.logits && m.targets) {
        n.outputs[0] = m.logits;
        n.outputs[1] = m.targets;
        n.noutputs = 2;
    }
    mc->classes = m.classes;
    return n;
}

mn_rebatch *mn_model_rebatch(mn_params *P, mn_model_ctx *mc, bool detect_anomaly)
{
    mn_compile_opts o = { .threads = mc->c.threads, .no_backward = true, .detect_anomaly = detect_anomaly };
    return mn_rebatch_new(P, build, mc, mn_tools_compile_opts(&o));
}

/* Adds one batch's argmax hits and confusion counts (rows: truth). */
static void count(const mn_exec *ex, const mn_model_nodes *m, int64_t K, int64_t *conf, mn_eval_result *r, int64_t *targets)
{
    const mn_tensor *lt = mn_exec_value(ex, m->outputs[0]), *yt = mn_exec_value(ex, m->outputs[1]);
    const float *l = mn_f32(lt);
    const int32_t *y = mn_i32(yt);
    int64_t n = mn_tensor_numel(yt);
    *targets = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= K) continue;
        int64_t best = 0;
        for (int64_t k = 1; k < K; k++)
            if (l[i * K + k] > l[i * K + best]) best = k;
        r->correct += best == y[i];
        if (conf) conf[y[i] * K + best]++;
        (*targets)++;
    }
}

mn_status mn_eval_items(mn_rebatch *r, mn_model_ctx *mc, const mn_data *d, int64_t items, int64_t *conf, bool progress,
                        mn_eval_result *out)
{
    return mn_eval_range(r, mc, d, 0, items, conf, progress, out);
}

mn_status mn_eval_range(mn_rebatch *r, mn_model_ctx *mc, const mn_data *d, int64_t first, int64_t items, int64_t *conf,
                        bool progress, mn_eval_result *out)
{
    int64_t B = mc->c.batch;
    int64_t *it = malloc((size_t)B * sizeof *it);
    double sum = 0, weight = 0;
    bool tty = progress && isatty(STDOUT_FILENO);
    memset(out, 0, sizeof *out);
    if (!it) return mn_set_error(MN_ERR_NOMEM, "evaluation: out of memory");
    mn_status s = MN_OK;
    int64_t nbatches = (items + B - 1) / B;
    for (int64_t at = 0; at < items && !s; at += B) {
        int64_t b = items - at < B ? items - at : B, targets = b;
        const mn_model_nodes *m = NULL;
        mn_exec *ex = mn_rebatch_get(r, b, &m);
        if (!ex) { s = mn_last_status(); break; }
        mn_train_cfg cb = mc->c;
        cb.batch = (int)b;
        for (int64_t i = 0; i < b; i++) it[i] = first + at + i;
        mn_data_fill_items(d, &cb, ex, it, true);
        if ((s = mn_exec_run(ex))) break;
        if (m->noutputs == 2) count(ex, m, mc->classes, conf, out, &targets);
        if (d->kind == MN_DATA_TEXT) targets = b * mc->c.seq;
        sum += (double)mn_exec_loss(ex) * (double)targets;
        weight += (double)targets;
        out->targets += targets;
        out->items += b;
        out->batches++;
        if (tty) { printf("\r  evaluating: batch %lld of %lld ", (long long)out->batches, (long long)nbatches); fflush(stdout); }
    }
    if (tty) { printf("\r%40s\r", ""); fflush(stdout); }
    free(it);
    out->loss = weight > 0 ? sum / weight : 0;
    out->full = items / B;
    out->rest = items % B;
    return s;
}
